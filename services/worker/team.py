"""A team run in the worker: plan (then let go of the run until a person approves), or execute the approved plan.

The agents and the orchestrator are plain code in agent/team/; this module is their host: the
model, the run's browser (the agent loop with the worker's recorder), the Coder's sandbox, the
approval policy, and the person (through the database and the webhook).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from agent.loop import run_agent
from agent.team.orchestrator import PlanInvalid, TeamLimits, TeamOutcome, execute_plan, fallback_plan, plan_task
from agent.team.roles import TeamStop
from services.worker.recorder import commit_events, emit
from services.worker.run_setup import RunSetup, SetupFailed, set_up_run
from services.worker.sandbox import SandboxLimits, SandboxResult, run_python
from services.worker.waits import wait_for_approval, wait_for_input
from sparkpilot import plans, run_files, runs
from sparkpilot.db.models import Run, RunStatus
from sparkpilot.db.session import session_scope
from sparkpilot.settings import WorkerSettings
from sparkpilot.webhook import notify

log = logging.getLogger(__name__)
PAGE_TEXT_CHARS = 3000
Ending = tuple[RunStatus, str, str | None, float | None]


class WorkerTeamHost:
    """What the team's agents use, in the worker."""

    def __init__(self, setup: RunSetup, heart: Any, policy: Any) -> None:
        self.setup, self.heart, self.policy = setup, heart, policy
        self.run, self.settings, self.hooks, self.approvals = setup.run, setup.settings, setup.hooks, setup.approvals
        self.task = runs.goal_of(self.run)
        self.workspace: Path = run_files.files_dir(self.settings, self.run.id)
        self.hooks.next_index = setup.done_steps

    def ask(self, messages: list[dict[str, Any]], schema: dict[str, Any], max_tokens: int) -> str:
        """The served model, JSON-constrained."""
        return self.policy.ask(messages, schema, max_tokens)

    def browse(self, goal: str) -> tuple[str, str | None, dict[str, Any]]:
        """The agent loop on the run's page for one step, within what is left of the run's step budget."""
        left = self.run.max_steps - self.hooks.next_index
        page = self.hooks.page
        if left <= 0 or page is None:
            return "failed", None, {"reason": f"the run's step budget ({self.run.max_steps}) is spent"}
        cfg = self.setup.loop_config(left, self.policy)  # the served model's profile, as a direct run's
        if self.setup.tools is not None:
            goal = self.setup.tools.goal_with_passages(goal, goal, self.settings.document_prompt_chars)
        outcome = run_agent(page, self.policy, goal, self.hooks, cfg, start_index=self.hooks.next_index)
        page = self.hooks.page or page
        try:
            info = {"url": page.url, "title": page.title(),
                    "text": (page.inner_text("body") if page.query_selector("body") else "")[:PAGE_TEXT_CHARS]}
        except PlaywrightError as exc:
            info = {"url": None, "title": None, "text": f"(page unreadable: {exc.message.splitlines()[0]})"}
        if outcome.status == "cancelled":
            raise TeamStop("cancelled", outcome.reason)
        return outcome.status, outcome.result, {**info, "reason": outcome.reason}

    def run_code(self, code: str) -> SandboxResult:
        """The Coder's program in the sandbox, the run's files folder as its only writable place."""
        limits = SandboxLimits(cpu_s=self.settings.sandbox_cpu_s, memory_mb=self.settings.sandbox_memory_mb,
                               wall_s=self.settings.sandbox_wall_s)
        run_files.open_for_search(self.workspace, self.settings.workspace_dir)  # run_python names a closed parent
        return run_python(code, self.workspace, limits)

    def permit(self, category: str, action: dict[str, Any], reason: str) -> str | None:
        """None to go ahead; the policy's deny or a person's no (or silence) as the reason otherwise."""
        judgement = self.approvals.judge(category, reason)
        if judgement.rule == "allow":
            return None
        if judgement.rule == "deny":
            return f"refused by the approval policy ({category})"
        approved, why = wait_for_approval(self.run.id, category, action, reason, None, self.settings, self.heart)
        if self.heart.cancel_requested.is_set():
            raise TeamStop("cancelled", "cancelled by user")
        return None if approved else f"not approved: {why}"

    def ask_user(self, question: str) -> str | None:
        """Wait for the person's answer; on timeout go on with None or fail the run (SPARKPILOT_INPUT_TIMEOUT_ACTION)."""
        how, answer = wait_for_input(self.run.id, question, self.settings, self.heart)
        if how == "cancelled":
            raise TeamStop("cancelled", "cancelled by user")
        if how == "timed_out" and self.settings.input_timeout_action == "fail":
            raise TeamStop("failed", f"no answer to the question {question!r} in time")
        return answer


def plan_run(run: Run, settings: WorkerSettings, policy: Any) -> None:
    """Write the plan: approved at once with auto_approve, else the run waits for a person."""
    with session_scope() as s:
        saved = plans.similar_plan(s, run.user_id, run.task)
        example = saved.steps if saved else None
        if saved:
            saved.uses += 1
    feedback = (run.plan or {}).get("feedback", [])
    source = "model" + (" (from a saved plan)" if example else "")
    try:
        steps = plan_task(policy.ask, runs.goal_of(run), feedback, example)
    except PlanInvalid as exc:  # e.g. a small model's JSON cut off at max_tokens: the person still gets a plan
        steps, source = fallback_plan(run.task), f"fallback: {exc}"[:500]
    commit_events(plans.propose_plan, run.id, steps, settings.plan_timeout_s, source)
    if not run.auto_approve:
        notify(settings.webhook_url, {"event": "plan.proposed", "run_id": run.id, "steps": steps})


def _approved(run_id: str) -> bool:
    """True once the plan is approved and the run is this worker's to execute (auto_approve)."""
    with session_scope() as s:
        return s.get(Run, run_id).status is RunStatus.running  # type: ignore[union-attr]


def execute_team(run: Run, settings: WorkerSettings, heart: Any, policy: Any) -> Ending:
    """Execute the approved plan from where its ledger stops, in the run's browser."""
    with session_scope() as s:
        plan = dict(s.get(Run, run.id).plan or {})  # type: ignore[union-attr]
    try:
        with set_up_run(run, settings, heart) as setup:
            outcome = _execute(setup, heart, policy, plan)
    except SetupFailed as exc:
        return RunStatus.failed, exc.reason, None, None
    if outcome.summary:
        commit_events(emit, run.id, "run.message", {"text": f"What each agent did:\n{outcome.summary}",
                                                    "from": "orchestrator"})
    if outcome.status == "succeeded":
        with session_scope() as s:
            plans.save_plan(s, s.get(Run, run.id))  # type: ignore[arg-type]
    return RunStatus(outcome.status), outcome.reason, outcome.result, None


def _execute(setup: RunSetup, heart: Any, policy: Any, plan: dict[str, Any]) -> TeamOutcome:
    """The orchestrator on the approved plan, its ledger and events written as each step ends."""
    run, settings = setup.run, setup.settings
    host = WorkerTeamHost(setup, heart, policy)

    def progress(done: list[dict[str, Any]], steps: list[dict[str, Any]], event: dict[str, Any]) -> None:
        def _write(s) -> list:  # noqa: ANN001
            plans.record_ledger(s, run.id, done, steps)
            if event.get("replanned"):
                return emit(s, run.id, "plan.revised", {"from_step": event["from_step"], "steps": steps})
            return emit(s, run.id, "team.step", event)
        commit_events(_write)

    return execute_plan(host, plan["steps"], plan.get("ledger", []),
                        TeamLimits(settings.team_step_retries, settings.team_max_replans), progress,
                        heart.cancel_requested.is_set)


def run_team(run: Run, settings: WorkerSettings, heart: Any, policy: Any) -> Ending | None:
    """A claimed team run: plan it (None: it waits for approval now) or execute its approved plan."""
    if heart.cancel_requested.is_set():
        return RunStatus.cancelled, "cancelled by user", None, None
    if run.status is RunStatus.planning:
        plan_run(run, settings, policy)
        if not _approved(run.id):
            return None
    return execute_team(run, settings, heart, policy)
