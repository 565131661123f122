"""A small MCP server for tests, written with the official SDK: arithmetic (safe) and a note book (not safe).

Run over stdio (`python tests/mcp_calc_server.py`) or streamable HTTP (`... --http PORT`). Notes go
to the file named by CALC_NOTES (one per line), so a test can see that a call really happened.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server.fastmcp import FastMCP

server = FastMCP("calc")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def save_note(text: str) -> str:
    """Save a note to the note book."""
    path = Path(os.environ.get("CALC_NOTES", "notes.txt"))
    with path.open("a") as fh:
        fh.write(text + "\n")
    return f"saved note {len(path.read_text().splitlines())}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the reason."""
    raise ValueError(reason)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.settings.port = int(sys.argv[2])
        server.run("streamable-http")
    else:
        server.run("stdio")
