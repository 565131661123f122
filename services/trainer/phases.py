"""The four phases of a training job. Each reads what the earlier ones left in the job's folder and returns its metrics.

prepare → train.jsonl/val.jsonl (+ an HF datasets folder) · train → adapter/ (checkpoints inside) ·
evaluate → the candidate registered (not promoted) and scored against the current version on
held-out MiniWoB seeds, through the real worker · publish → the eval gate promotes or refuses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.trainer.dataset import prepare as prepare_examples
from sparkpilot import registry, runs, training
from sparkpilot.db.models import AdapterAlias, Run, RunStatus, TrainingDataset, TrainingJob, User
from sparkpilot.db.session import session_scope
from sparkpilot.errors import InvalidInput, SparkpilotError
from sparkpilot.queue import enqueue_run
from sparkpilot.schemas import MiniwobEnv, RunCreate
from sparkpilot.settings import ROOT, TrainerSettings, get_inference_settings
from sparkpilot.trajectory import TrajectoryStep, iter_records, read_jsonl


LOSS_POINTS = 2000  # of the loss curve kept in the job's live progress


class JobCancelled(Exception):
    """The user cancelled the job; the phase stopped where it was."""


class PhaseFailed(SparkpilotError):
    """A phase cannot go on; the message is the job's reason."""


def job_dir(settings: TrainerSettings, job_id: str) -> Path:
    """The job's working folder."""
    return settings.training_dir / job_id


# ---------------------------------------------------------------- prepare


def prepare(job: TrainingJob, settings: TrainerSettings, progress: Callable[..., bool]) -> dict[str, Any]:
    """Select the runs, build the examples, write train/val JSONL and the HF datasets folder."""
    hp = job.hyperparameters
    with session_scope() as s:
        records = job_records(s, job.dataset, job.user_id)
        prepared = prepare_examples(records, hp["val_fraction"], hp["balance_repeat"], hp["seed"])
    if not prepared.train:
        raise PhaseFailed(f"no training examples: {prepared.stats.get('records', 0)} recorded steps matched the dataset "
                          f"filter, {prepared.stats.get('skipped', 0)} were not usable")
    folder = job_dir(settings, job.id) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", prepared.train), ("val", prepared.val)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(ex.row()) + "\n" for ex in rows))
    out = subprocess.run([trainer_python(settings), "-m", "services.trainer.hf_dataset", str(folder)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise PhaseFailed(f"could not write the HF datasets folder: {out.stderr.strip()[-300:]}")
    progress(phase="prepare", examples=prepared.stats["train"])
    return prepared.stats


def job_records(session, dataset: dict[str, Any], owner_id: int) -> list[TrajectoryStep]:  # noqa: ANN001
    """The trajectory records a job's dataset spec names: an uploaded file, or the recorded runs of the users it
    may learn from (its owner's, or those it names) that a filter keeps."""
    if dataset.get("dataset_id"):
        row = session.get(TrainingDataset, dataset["dataset_id"])
        if row is None:
            raise PhaseFailed(f"dataset {dataset['dataset_id']!r} no longer exists")
        return list(read_jsonl(Path(row.path)))
    try:
        flt = training.runs_filter(session, dataset.get("runs") or {}, owner_id)
    except InvalidInput as exc:  # a named user was deleted since the job was queued
        raise PhaseFailed(exc.message) from exc
    return list(iter_records(session, flt))


# ---------------------------------------------------------------- train


def trainer_python(settings: TrainerSettings) -> str:
    """The Python with torch + transformers + peft: the trainer venv natively, this one in the trainer image."""
    venv = Path(settings.trainer_venv) / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def base_weights(settings: TrainerSettings) -> str:
    """The base model's weights: the prepared folder natively, the hub id (HF cache) under compose."""
    inference = get_inference_settings()
    return inference.model_dir or settings.inference_model


def train(job: TrainingJob, settings: TrainerSettings, progress: Callable[..., bool]) -> dict[str, Any]:
    """LoRA SFT in a child process (resuming from its checkpoint), its progress lines relayed to the job."""
    folder = job_dir(settings, job.id)
    init = None
    if job.base:
        with session_scope() as s:
            init = registry.resolve(s, job.base).path
    config = {"hyperparameters": job.hyperparameters, "out_dir": str(folder / "train"), "base_model": base_weights(settings),
              "base_name": settings.inference_model, "init_adapter": init,
              "train": str(folder / "data" / "train.jsonl"), "val": str(folder / "data" / "val.jsonl")}
    (folder / "train").mkdir(parents=True, exist_ok=True)
    config_file = folder / "train" / "config.json"
    config_file.write_text(json.dumps(config, indent=2))
    _kill_leftover(folder / "train" / "pid")
    log = (folder / "train" / "train.log").open("a")
    module = "services.trainer.sdft_train" if job.method == "sdft" else "services.trainer.lora_train"
    proc = subprocess.Popen([trainer_python(settings), "-m", module, "--config", str(config_file)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    (folder / "train" / "pid").write_text(str(proc.pid))
    losses: list[list[float]] = list((job.progress or {}).get("loss_curve") or [])  # a resumed job keeps its curve
    done: dict[str, Any] = {}
    diagnostic: dict[str, Any] = {}
    error = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "step":
                losses = [p for p in losses if p[0] < event["step"]] + [[event["step"], event["loss"]]]
                if progress(phase="train", step=event["step"], total=event["total"], loss=event["loss"],
                            eta_s=event["eta_s"], loss_curve=losses[-LOSS_POINTS:]):
                    raise JobCancelled()
            elif event.get("event") == "start":
                progress(phase="train", step=event["resumed_from"], total=event["total"], resumed_from=event["resumed_from"])
            elif event.get("event") == "diagnostic":  # sdft: the KL before any update
                diagnostic = {"kl_step0": event["kl"], "kl_step0_weak": event["weak"]}
                progress(phase="train", **diagnostic)
            elif event.get("event") == "done":
                done = event
            elif event.get("event") == "error":
                error = event.get("message")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        log.close()
    if proc.returncode != 0 or not done:
        tail = (folder / "train" / "train.log").read_text(errors="replace")[-400:]
        last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
        raise PhaseFailed(f"training failed (exit {proc.returncode}): {error or last}")
    if not diagnostic and job.method == "sdft":  # a resumed job: the diagnostic was on its progress
        diagnostic = {k: (job.progress or {}).get(k) for k in ("kl_step0", "kl_step0_weak")}
    return {"loss": losses, "val_loss": done.get("val_loss"), "seconds": done.get("seconds"),
            "adapter_dir": done.get("adapter"), "steps": job.hyperparameters["steps"], "method": job.method,
            **diagnostic}


def _kill_leftover(pid_file: Path) -> None:
    """A training child left by a trainer that was killed must not write checkpoints beside the resumed one."""
    try:
        pid = int(pid_file.read_text())
        os.killpg(pid, signal.SIGKILL)
        time.sleep(0.2)
    except (OSError, ValueError):
        pass  # no file, or the process is gone


# ---------------------------------------------------------------- evaluate


def current_model(settings: TrainerSettings, name: str) -> str:
    """What the candidate must beat: `name`'s promoted version if it has one, else what runs use by default."""
    with session_scope() as s:
        if s.get(AdapterAlias, name) is not None:
            return registry.resolve(s, name).served_name
        return registry.resolve_model(s, None, settings.inference_model, settings.agent_adapter)


def run_episodes(job: TrainingJob, settings: TrainerSettings, model: str, progress: Callable[..., bool],
                 label: str) -> dict[str, list[int]]:
    """Each (task, seed) of the job's eval spec as a MiniWoB run on `model` through the worker; {task: [wins, n]}."""
    spec = job.eval
    ids: list[tuple[str, str]] = []
    with session_scope() as s:
        user = s.get(User, job.user_id)
        reused = reusable_episodes(s, model, spec)
        for task in spec["tasks"]:
            for seed in spec["seeds"]:
                if (task, seed) in reused:
                    ids.append((task, reused[(task, seed)]))
                    continue
                body = RunCreate(task=f"eval {job.name} ({label}): {task} seed {seed}", max_steps=spec["max_steps"],
                                 start_url=f"{settings.miniwob_url.rstrip('/')}/miniwob/{task}.html",
                                 env=MiniwobEnv(task=task, seed=seed))
                run, _events = runs.create_run(s, user, body, model, spec["max_steps"])
                run.policy = {"type": "model", "purpose": "eval", "job": job.id}
                ids.append((task, run.id))
    reused_ids = set(reused.values())
    for _task, run_id in ids:
        if run_id not in reused_ids:
            enqueue_run(run_id)
    deadline = time.monotonic() + settings.eval_timeout_s
    while True:
        with session_scope() as s:
            rows = {r.id: r for r in s.query(Run).filter(Run.id.in_([i for _t, i in ids]))}
            finished = [r for r in rows.values() if r.status.terminal]
            table: dict[str, list[int]] = {t: [0, 0] for t in spec["tasks"]}
            for task, run_id in ids:
                r = rows[run_id]
                if r.status.terminal:
                    table[task][0] += int((r.reward or 0) > 0)
                    table[task][1] += 1
        if progress(phase="evaluate", model=model, episodes_done=len(finished), episodes=len(ids),
                    episodes_reused=len(reused)):
            with session_scope() as s:
                owner = s.get(User, job.user_id)
                for run_id in [i for _t, i in ids if not rows[i].status.terminal]:
                    runs.request_cancel(s, run_id, owner)
            raise JobCancelled()
        if len(finished) == len(ids):
            return table
        if time.monotonic() > deadline:
            raise PhaseFailed(f"evaluation of {model} did not finish in {settings.eval_timeout_s:.0f} s "
                              f"({len(finished)} of {len(ids)} episodes)")
        time.sleep(1)


def reusable_episodes(session, model: str, spec: dict[str, Any]) -> dict[tuple[str, int], str]:  # noqa: ANN001
    """Finished greedy evaluation runs of `model` since `spec['reuse_since']`: {(task, seed): run id}, latest first."""
    if not spec.get("reuse_since"):
        return {}
    since = training.as_utc(spec["reuse_since"])
    rows = (session.query(Run).filter(Run.model == model, Run.created_at >= since, Run.max_steps == spec["max_steps"],
                                      Run.status.in_([RunStatus.succeeded, RunStatus.failed]))
            .order_by(Run.created_at.desc()))
    wanted = {(t, s) for t in spec["tasks"] for s in spec["seeds"]}
    found: dict[tuple[str, int], str] = {}
    for r in rows:
        key = ((r.env or {}).get("task"), (r.env or {}).get("seed"))
        if (r.policy or {}).get("purpose") == "eval" and key in wanted and key not in found:
            found[key] = r.id
    return found


def _rate(table: dict[str, list[int]]) -> float:
    wins, n = sum(v[0] for v in table.values()), sum(v[1] for v in table.values())
    return wins / n if n else 0.0


def evaluate(job: TrainingJob, settings: TrainerSettings, progress: Callable[..., bool]) -> dict[str, Any]:
    """Register the candidate (not promoted), then score it and the current version on the held-out seeds."""
    overlap = sorted({f"{t}:{s}" for t in job.eval["tasks"] for s in job.eval["seeds"]}
                     & set((job.metrics.get("prepare") or {}).get("seeds") or []))
    if overlap:
        raise PhaseFailed(f"eval seeds overlap the training data's: {', '.join(overlap[:10])}")
    metrics = dict(job.metrics.get("evaluate") or {})
    if "candidate" not in metrics:  # registering is not repeated when a resumed job re-enters this phase
        # Into the adapters folder (a volume vLLM reads under compose), one folder per job.
        target = Path(settings.adapters_dir) / job.name / job.id
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree((job.metrics.get("train") or {})["adapter_dir"], target)
        with registry.registry_lock(settings), session_scope() as s:
            row = registry.register(s, job.name, target, settings.inference_model, settings.max_lora_rank,
                                    f"training job {job.id}", settings.adapters_dir, promote=False)
            metrics["candidate"] = row.served_name
        with session_scope() as s:
            s.get(TrainingJob, job.id).adapter = metrics["candidate"]
        metrics["current"] = current_model(settings, job.name)
    registry.ensure_loaded(metrics["candidate"], settings)
    for label in ("current", "candidate"):
        table = run_episodes(job, settings, metrics[label], progress, label)
        metrics[f"{label}_table"], metrics[f"{label}_rate"] = table, _rate(table)
    return metrics


# ---------------------------------------------------------------- publish


def publish(job: TrainingJob, settings: TrainerSettings, progress: Callable[..., bool]) -> dict[str, Any]:
    """The eval gate: promote the candidate only if it scores at least the current version plus the margin."""
    ev = job.metrics["evaluate"]
    candidate, current = ev["candidate_rate"], ev["current_rate"]
    margin = job.eval.get("gate_margin")
    margin = settings.gate_margin if margin is None else margin
    wins = candidate >= current + margin
    verdict = f"{ev['candidate']} {candidate:.0%} vs {ev['current']} {current:.0%} (margin {margin:+.0%})"
    promoted = False
    if wins and job.promote == "auto":
        with registry.registry_lock(settings), session_scope() as s:
            registry.promote(s, ev["candidate"])
        promoted, reason = True, f"promoted: {verdict}"
    elif wins:
        reason = f"passed the gate, not promoted (promote: manual): {verdict}"
    else:
        reason = f"not promoted, below the gate: {verdict}"
    progress(phase="publish", gate=reason)
    return {"promoted": promoted, "passed": wins, "reason": reason, "candidate": ev["candidate"],
            "current": ev["current"], "candidate_rate": candidate, "current_rate": current,
            "margin": margin}


PHASE_FUNCTIONS: dict[str, Callable[[TrainingJob, TrainerSettings, Callable[..., bool]], dict[str, Any]]] = {
    "prepare": prepare, "train": train, "evaluate": evaluate, "publish": publish,
}
