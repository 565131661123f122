"""The worker waiting for a person mid-run: an action's approval, or an answer to a question.

The run keeps its browser, lock and heartbeat while it waits; the worker polls the database every
SPARKPILOT_WAIT_POLL_S and stops waiting on an answer, the deadline, or a cancel request.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent.approval_policy import ApprovalPolicy
from services.worker.recorder import commit_events
from sparkpilot import approvals
from sparkpilot.db.models import ApprovalStatus, Run
from sparkpilot.settings import WorkerSettings
from sparkpilot.webhook import notify

CANCELLED = "the run was cancelled"


def approval_policy(run: Run, settings: WorkerSettings) -> ApprovalPolicy:
    """The run's approval rules: the policy file with the run's overrides (ValueError/OSError if unreadable)."""
    if run.env:  # a benchmark episode has no one to ask: only the built-in rules (stay on the allowed domains)
        return ApprovalPolicy()
    return ApprovalPolicy.load(settings.approval_policy, run.policy.get("approvals"))


def wait_for_approval(run_id: str, category: str, action: dict[str, Any], reason: str, screenshot: bytes | None,
                      settings: WorkerSettings, heart: Any) -> tuple[bool, str]:
    """Pause the run until a person approves or denies `action`, or its deadline (a deny): (approved, why)."""
    shot_rel = None
    if screenshot:
        shot_rel = Path("artifacts") / "runs" / run_id / f"approval-{time.time_ns()}.png"
        (settings.workspace_dir / shot_rel).parent.mkdir(parents=True, exist_ok=True)
        (settings.workspace_dir / shot_rel).write_bytes(screenshot)
    holder: dict[str, str | None] = {}

    def _request(s) -> list:  # noqa: ANN001
        aid, events = approvals.request_approval(s, run_id, category, action, reason,
                                                 str(shot_rel) if shot_rel else None, settings.approval_timeout_s)
        holder["id"] = aid
        return events

    commit_events(_request)
    aid = holder.get("id")
    if aid is None:
        return False, "the run is no longer running"
    notify(settings.webhook_url, {"event": "approval.requested", "run_id": run_id, "approval_id": aid,
                                  "category": category, "action": action, "reason": reason})
    while True:
        if heart.cancel_requested.is_set():
            commit_events(approvals.withdraw_approval, run_id, aid, CANCELLED)
            return False, CANCELLED
        box: dict[str, Any] = {}

        def _poll(s) -> list:  # noqa: ANN001
            box["status"], box["why"], events = approvals.settle_approval(s, run_id, aid)
            return events

        commit_events(_poll)
        if box["status"] is not ApprovalStatus.pending:
            return box["status"] is ApprovalStatus.approved, str(box["why"] or box["status"].value)
        time.sleep(settings.wait_poll_s)


def wait_for_input(run_id: str, question: str, settings: WorkerSettings, heart: Any) -> tuple[str, str | None]:
    """Ask the person and wait: ("answered", text), ("timed_out", None) or ("cancelled", None)."""
    if not commit_events(approvals.ask_input, run_id, question, settings.input_timeout_s):
        return "cancelled", None
    notify(settings.webhook_url, {"event": "input.requested", "run_id": run_id, "question": question})
    while True:
        if heart.cancel_requested.is_set():
            return "cancelled", None
        box: dict[str, Any] = {}

        def _poll(s) -> list:  # noqa: ANN001
            box["settled"], box["answer"], events = approvals.settle_input(s, run_id)
            return events

        commit_events(_poll)
        if box["settled"]:
            return ("answered", box["answer"]) if box["answer"] is not None else ("timed_out", None)
        time.sleep(settings.wait_poll_s)
