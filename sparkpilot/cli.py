"""The `sparkpilot` command line."""

from __future__ import annotations

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


@models_app.command("prepare")
def models_prepare() -> None:
    """Install the inference venv if needed and convert the embedded GGUF to a safetensors folder (cached)."""
    import subprocess

    from sparkpilot.settings import ROOT

    raise typer.Exit(subprocess.call([str(ROOT / "services" / "inference" / "setup.sh")]))


if __name__ == "__main__":
    app()
