"""The web agent: observe → prompt → decide → parse → guard → act → record."""
