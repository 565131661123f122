"""What every run needs before its first step, direct or team: the approval policy, its tools, the
steps an earlier attempt recorded, the browser on the start page, and the agent loop's configuration
for the model that answers (its profile: dialect, screenshots, coordinates).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from agent.approval_policy import ApprovalPolicy
from agent.loop import LoopConfig
from agent.observe import bid_salt
from services.worker.browser import get_browser_pool
from services.worker.recorder import WorkerHooks
from services.worker.tools import WorkerTools, run_tools
from services.worker.waits import approval_policy
from sparkpilot.db.models import Run, Step
from sparkpilot.db.session import session_scope
from sparkpilot.profiles import TEXT_DEFAULT, served_profile
from sparkpilot.settings import WorkerSettings


class SetupFailed(Exception):
    """The run cannot start; `reason` is its failure reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class RunSetup:
    """A run ready for its steps, on its start page."""

    run: Run
    settings: WorkerSettings
    approvals: ApprovalPolicy
    tools: WorkerTools | None
    done_steps: int  # recorded by earlier attempts: a resumed run goes on after them
    hooks: WorkerHooks

    def loop_config(self, max_steps: int, policy: Any, root: str | None = None) -> LoopConfig:
        """The agent loop's configuration; the served model's profile when the model answers."""
        s = self.settings
        return LoopConfig(max_steps=max_steps, max_failures=s.agent_max_failures, allowed=self.hooks.allowed,
                          screenshot=s.agent_screenshot, salt=bid_salt(self.run.id), root=root,
                          thought=s.agent_thought, approvals=self.approvals, tools=self.tools,
                          profile=served_profile(s) if policy.name == "model" else TEXT_DEFAULT)


@contextmanager
def set_up_run(run: Run, settings: WorkerSettings, heart: Any) -> Iterator[RunSetup]:
    """The run set up and on its start page (SetupFailed if it cannot start); its browser context is closed after."""
    try:
        approvals = approval_policy(run, settings)
    except (OSError, ValueError) as exc:
        raise SetupFailed(f"approval policy unreadable: {exc}") from exc
    try:
        tools = run_tools(run, settings)
    except (OSError, ValueError) as exc:
        raise SetupFailed(f"MCP server config unreadable: {exc}") from exc
    with session_scope() as s:
        done_steps = s.scalar(select(func.count()).select_from(Step).where(Step.run_id == run.id)) or 0
    hooks = WorkerHooks(run.id, settings, heart, get_browser_pool(settings), run.start_url, run.allowed_domains)
    try:
        failed = hooks.open_start()
        if failed:
            raise SetupFailed(failed)
        yield RunSetup(run, settings, approvals, tools, done_steps, hooks)
    finally:
        hooks.close()  # a cancelled or failed run never keeps its browser context
