"""The browser's egress proxy: Squid configured from the settings (the policy is sparkpilot/egress.py)."""
