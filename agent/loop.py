"""The agent loop: observe → prompt → decide → parse → guard → act → record, until a terminal outcome."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from agent import guards
from agent.action_space import ThoughtMode, build_action_space
from agent.actions import ActionResult, execute
from agent.approval_policy import ApprovalPolicy, Judgement
from agent.dialects import Turn, dialect_for
from agent.human import perform, settle
from agent.observe import Observation, observe
from agent.parse import ParseError
from agent.policies import Decision, Policy
from agent.prompt import PromptTooLong, describe_action
from agent.tools import MAX_RESULT_CHARS, TOOL_ACTIONS, ToolBox, judge_tool
from sparkpilot.errors import SparkpilotError
from sparkpilot.llm_client import InferenceUnavailable
from sparkpilot.logs import MASK, add_secret
from sparkpilot.profiles import TEXT_DEFAULT, ModelProfile
from sparkpilot.urls import host_of, navigation_refusal, url_allowed

log = logging.getLogger(__name__)


@dataclass
class StepRecord:
    """Everything one step produced, as the recorder stores it."""

    index: int
    observation: Observation
    prompt: list[dict[str, Any]]  # as recorded: screenshots as step references, not image bytes
    raw_output: str | None
    action: dict[str, Any]
    error: str | None
    timings_ms: dict[str, float]
    model_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """How the loop ended."""

    status: str  # succeeded | failed | cancelled
    reason: str
    result: str | None = None
    reward: float | None = None  # the environment's verdict, when there is one


@dataclass
class LoopConfig:
    """Limits of one run."""

    max_steps: int = 30
    max_failures: int = 3
    allowed: list[str] = field(default_factory=list)
    screenshot: bool = True
    action_timeout_ms: float = 5000
    salt: int = 1  # element ids: random per salt (see observe.py)
    root: str | None = None  # CSS selector of the task area, when an environment has one
    thought: ThoughtMode = "none"
    profile: ModelProfile = TEXT_DEFAULT  # what the model reads and how it answers (its dialect)
    approvals: ApprovalPolicy = field(default_factory=ApprovalPolicy)  # which actions need a person's yes
    tools: ToolBox | None = None  # search_documents and MCP tools, when the host offers them


class Hooks:
    """What the loop needs from its host (the worker, the benchmark, a test); override as needed."""

    def step_started(self, index: int) -> None:
        """A step begins."""

    def record(self, step: StepRecord) -> None:
        """Persist a finished step (and add its own `persist` time to step.timings_ms), now or in the background."""

    def flush(self) -> None:
        """Wait until every step handed to `record` is persisted (raise if one could not be)."""

    def message(self, text: str) -> None:
        """The agent tells the user something."""

    def should_cancel(self) -> bool:
        """True when the user asked to cancel."""
        return False

    def env_outcome(self) -> Outcome | None:
        """An environment that knows when the task ended (MiniWoB reward) says so here."""
        return None

    def env_judges_end(self) -> bool:
        """True when an environment, not the agent's finish, decides success."""
        return False

    def ask_approval(self, judgement: Judgement, action: dict[str, Any], obs: Observation) -> tuple[bool, str]:
        """Ask a person whether `action` may go ahead: (approved, why). No one to ask here: no."""
        return False, "no one can approve actions in this run"

    def network_notes(self) -> str | None:
        """What the host's network policy blocked during the last action, for the model (None: nothing)."""
        return None

    def relaunch(self) -> Page:
        """A fresh page after a browser crash (raise to give up)."""
        raise RuntimeError("no relaunch available")

    def live(self) -> bool:
        """True while someone watches the page live: the loop then calls `pump` while it waits on the model."""
        return False

    def pump(self) -> None:
        """Let the host's live view run on Playwright's thread for a moment."""

    def acting(self, index: int, action: dict[str, Any], point: tuple[float, float] | None, label: str) -> None:
        """The loop is about to perform `action` (at `point`, when it has one)."""

    def human_control(self) -> bool:
        """True while a person has taken the browser from the agent."""
        return False

    def human_action(self) -> Any:
        """The person's next action (see sparkpilot/control.py), or None when there is none yet."""
        return None

    def control_changed(self, by: str) -> None:
        """The browser passed to `by` ('human' or 'agent')."""


def run_agent(page: Page, policy: Policy, goal: str, hooks: Hooks, cfg: LoopConfig, start_index: int = 0) -> Outcome:
    """Drive `page` towards `goal` until finish, max_steps, too many failures, a guard stop or cancel."""
    outcome = _run(page, policy, goal, hooks, cfg, start_index)
    hooks.flush()  # every step is persisted before the caller writes the run's end
    return outcome


def _run(page: Page, policy: Policy, goal: str, hooks: Hooks, cfg: LoopConfig, start_index: int) -> Outcome:
    history: list[dict[str, Any]] = []
    turns: list[Turn] = []
    dialect = dialect_for(cfg.profile)
    last_error: str | None = None
    failures = 0
    relaunched = False
    judged = hooks.env_judges_end()
    shoot = cfg.screenshot and reads_screenshot(cfg.profile)  # else it is taken while the model thinks
    index = start_index - 1
    for _ in range(cfg.max_steps):  # a person's steps do not count against the agent's budget
        index += 1
        if hooks.should_cancel():
            return Outcome("cancelled", "cancelled by user")
        if hooks.human_control():
            index, env = human_turn(page, hooks, cfg, index, goal, dialect, policy, turns, judged)
            if env is not None:
                return env
            if hooks.should_cancel():
                return Outcome("cancelled", "cancelled by user")
        t0 = time.perf_counter()
        hooks.step_started(index)
        try:
            obs = observe(page, screenshot=shoot, salt=cfg.salt, root=cfg.root)
        except PlaywrightError as exc:
            if relaunched:
                return Outcome("failed", f"browser crashed again after a relaunch: {_first_line(exc)}")
            log.warning("page crashed (%s); relaunching once", _first_line(exc))
            relaunched = True
            try:
                page = hooks.relaunch()
                obs = observe(page, screenshot=shoot, salt=cfg.salt, root=cfg.root)
            except (PlaywrightError, RuntimeError) as again:
                return Outcome("failed", f"browser crashed and the relaunch failed: {again}".splitlines()[0])
        t1 = time.perf_counter()
        space = build_action_space(obs, env_judges_end=judged, thought=cfg.thought,
                                   coordinates=cfg.profile.actions == "coordinates", tools=cfg.tools)
        try:
            prompt = dialect.prompt(index, goal, obs, space, turns, last_error, policy)
        except PromptTooLong as exc:
            return Outcome("failed", f"prompt does not fit the model: {exc}")
        except InferenceUnavailable as exc:
            return Outcome("failed", f"model server unreachable: {exc.message}")
        t2 = time.perf_counter()
        try:
            decision, model_ms = _decide(policy, prompt.messages, space if prompt.structured else None,
                                         page if cfg.screenshot and not shoot else None, obs, hooks)
        except InferenceUnavailable as exc:
            return Outcome("failed", f"model server unreachable: {exc.message}")
        except SparkpilotError as exc:
            return Outcome("failed", f"model error: {exc.message}")
        t3 = time.perf_counter()
        action: dict[str, Any] = {}
        error = stop = None
        finished = gave_up = False
        answer = None
        try:
            parsed = dialect.parse(decision.text, obs)
            action = {"name": parsed.name, "args": parsed.args}
        except ParseError as exc:
            error = f"could not parse your answer: {exc}"
        secret = None
        if action:
            secret = _mask_password(action, obs)
            verdict = guards.check(action["name"], action["args"], obs, history, cfg.allowed)
            error, stop = verdict.feedback, verdict.stop
        t4 = time.perf_counter()
        if action and not error and not stop:
            judgement = judge_tool(cfg.tools, action["name"], action["args"], cfg.approvals) \
                if action["name"] in TOOL_ACTIONS else cfg.approvals.judge_web(action["name"], action["args"], obs, cfg.allowed)
            error = _approval_error(judgement, action, obs, hooks)
            if not error and action["name"] == "goto" and not url_allowed(str(action["args"].get("url", "")), cfg.allowed):
                url = str(action["args"]["url"])  # approved (or the run's first site): it may be there now
                host = host_of(url) if navigation_refusal(url) is None else ""
                if host:
                    cfg.allowed.append(host)
        t_approved = time.perf_counter()
        if action and not error and not stop:
            if action["name"] in TOOL_ACTIONS:
                result = cfg.tools.call(action["name"], action["args"]) if cfg.tools else \
                    ActionResult(error=f"{action['name']} is not available in this run")
                if result.output is not None:
                    action["result"] = result.output[:MAX_RESULT_CHARS]
            else:
                if hooks.live():
                    hooks.acting(index, action, _point(action, obs), describe_action(action, obs))
                result = execute(page, action["name"], action["args"], cfg.action_timeout_ms)
            error = result.error
            blocked = hooks.network_notes()
            if blocked:
                error = f"{error}; {blocked}" if error else blocked
            if result.message:
                hooks.message(result.message)
            finished, answer, gave_up = result.finished, result.answer, not result.success
        t5 = time.perf_counter()
        raw = decision.text
        if secret:  # typed into the page only: the step, its events, the trajectory and later prompts keep a mask
            action = {**action, "args": {**action["args"], "text": MASK}}
            raw = raw.replace(secret, MASK)
        env = hooks.env_outcome() if not stop else None
        # step: the whole step's wall time; the harness's own share is step - model.
        timings = {"observe": _ms(t1 - t0), "prompt": _ms(t2 - t1), "model": model_ms,
                   "decide": _ms(t3 - t2), "parse_guard": _ms(t4 - t3), "act": _ms(t5 - t_approved),
                   "step": _ms(time.perf_counter() - t0),
                   **({"approval": _ms(t_approved - t4)} if t_approved - t4 > 0.001 else {}),
                   **{f"observe_{k}": v for k, v in obs.timings_ms.items()}}
        metrics = {"prompt_tokens_counted": prompt.tokens, **decision.metrics}
        hooks.record(StepRecord(index, obs, prompt.record, raw, action, error, timings, metrics))
        if action:
            history.append(action)
        line = describe_action(action, obs) + (f"  -> error: {error}" if error else "") \
            + (f"  -> result: {action['result']}" if action.get("result") else "") if action else ""
        turns.append(Turn(index, obs.url, line, raw, error))
        if stop:
            return Outcome("failed", stop)
        if env is not None:
            return env
        if finished:
            if gave_up:
                return Outcome("failed", "the agent gave up", answer)
            if judged:  # only the environment's reward makes a success
                return Outcome("failed", "finished without reward", answer)
            return Outcome("succeeded", "finished", answer)
        failures = failures + 1 if error else 0
        last_error = error
        if failures >= cfg.max_failures:
            return Outcome("failed", f"too many consecutive failures ({failures}); last: {error}")
    return Outcome("failed", f"max_steps ({cfg.max_steps}) reached")


def reads_screenshot(profile: ModelProfile) -> bool:
    """True when the model's prompt carries the screenshot, so it must be taken before the model is asked."""
    return profile.input != "text" or profile.answer != "json"


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _decide(policy: Policy, messages: list[dict[str, Any]], space: Any, page: Page | None,
            obs: Observation, hooks: Hooks) -> tuple[Decision, float]:
    """The policy's decision and its own latency (ms); with `page`, the screenshot is taken meanwhile.

    Playwright's sync API is bound to this thread, so the model's request goes to a helper thread
    (the policies are thread-safe) while this one captures the screenshot, which only the record reads,
    and, while someone watches live, keeps the screencast's frames flowing.
    """
    global _POOL
    live = hooks.live()
    if page is None and not live:
        return _timed(policy.decide, messages, space)
    if _POOL is None or _POOL[0] != os.getpid():  # a pool made before a fork has no threads in the child
        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=4, thread_name_prefix="decide"))
    future = _POOL[1].submit(_timed, policy.decide, messages, space)
    if page is not None:
        t0 = time.perf_counter()
        try:
            obs.screenshot = page.screenshot(type="png")
        except PlaywrightError as exc:  # the next observe finds the crash and relaunches; this step has no picture
            log.warning("screenshot failed: %s", _first_line(exc))
        obs.timings_ms["screenshot"] = _ms(time.perf_counter() - t0)
    while live and not future.done():
        hooks.pump()
    return future.result()


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, _ms(time.perf_counter() - t0)


def _approval_error(judgement: Judgement | None, action: dict[str, Any], obs: Observation, hooks: Hooks) -> str | None:
    """The approval policy's verdict as feedback for the model; None when the action may go ahead."""
    if judgement is None or judgement.rule == "allow":
        return None
    if judgement.rule == "deny":
        return f"refused by the approval policy: {judgement.reason}."
    approved, why = hooks.ask_approval(judgement, action, obs)
    return None if approved else f"a person did not approve this ({judgement.reason}): {why}."


def _mask_password(action: dict[str, Any], obs: Observation) -> str | None:
    """The text a `fill` types into a password field (masked in this process's logs from now on), else None."""
    if action["name"] == "fill" and (obs.element(str(action["args"].get("bid"))) or {}).get("type") == "password":
        secret = str(action["args"].get("text", ""))
        if secret:
            add_secret(secret)
            return secret
    return None


def _point(action: dict[str, Any], obs: Observation) -> tuple[float, float] | None:
    """Where on the page an action lands: its element's centre, or its own coordinates."""
    args = action.get("args", {})
    if "x" in args and "y" in args:
        return float(args["x"]), float(args["y"])
    el = obs.element(str(args["bid"])) if "bid" in args else None
    return (float(el["x"]), float(el["y"])) if el and "x" in el else None


def human_turn(page: Page, hooks: Hooks, cfg: LoopConfig, index: int, goal: str, dialect: Any, policy: Policy,
               turns: list[Turn], judged: bool) -> tuple[int, Outcome | None]:
    """A person has the browser: do and record their actions until they hand it back (the next index, an env verdict)."""
    hooks.control_changed("human")
    while hooks.human_control() and not hooks.should_cancel():
        act = hooks.human_action()
        if act is None:
            hooks.pump()
            continue
        t0 = time.perf_counter()
        hooks.step_started(index)
        obs = observe(page, screenshot=cfg.screenshot, salt=cfg.salt, root=cfg.root)
        space = build_action_space(obs, env_judges_end=judged, thought=cfg.thought,
                                   coordinates=cfg.profile.actions == "coordinates", tools=cfg.tools)
        try:  # what the agent would have been shown: the person's step is a demonstration
            messages = dialect.prompt(index, goal, obs, space, turns, None, policy).record
        except (PromptTooLong, InferenceUnavailable):
            messages = []
        t1 = time.perf_counter()
        action, error, point = perform(page, act)
        hooks.acting(index, action, point, "person: " + describe_action(action, obs))
        settle(page)
        timings = {"observe": _ms(t1 - t0), "act": _ms(time.perf_counter() - t1), "step": _ms(time.perf_counter() - t0)}
        hooks.record(StepRecord(index, obs, messages, None, action, error, timings))
        line = "a person did: " + describe_action(action, obs) + (f"  -> error: {error}" if error else "")
        turns.append(Turn(index, obs.url, line, None, error))
        index += 1
        env = hooks.env_outcome()
        if env is not None:
            return index, env
    if not hooks.should_cancel():
        hooks.control_changed("agent")
    return index, None


def _first_line(exc: PlaywrightError) -> str:
    return (exc.message or str(exc)).splitlines()[0]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
