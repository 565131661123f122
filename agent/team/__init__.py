"""The agent team: an orchestrator that plans and delegates to WebSurfer, Coder, FileSurfer and UserProxy."""
