"""The orchestrator: plan (structured output), then per step delegate → validate → retry or re-plan, then answer.

Seed 001's orchestrated cycle: analyse (plan) → execute (an agent) → validate (the model judges the
result against the step's `expected`; a rejected result is retried with the validator's feedback, a
step that keeps failing triggers a bounded re-plan of the rest) → summarise (a final answer plus one
line per step saying what each agent did). The ledger of done steps is handed to `progress` after
every step, so the host can persist it and a resumed run skips what is done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import ValidationError

from agent.team.roles import AGENTS, StepResult, TeamHost, TeamStop, describe_agents, results_text
from sparkpilot.team_schemas import Plan, PlanStep

MAX_PLAN_STEPS = 6
PLAN_SCHEMA = {
    "type": "object",
    "properties": {"steps": {"type": "array", "minItems": 1, "maxItems": MAX_PLAN_STEPS, "items": {
        "type": "object",
        "properties": {"agent": {"type": "string", "enum": ["web", "coder", "file", "user"]},
                       "instruction": {"type": "string", "minLength": 1, "maxLength": 300},
                       "expected": {"type": "string", "maxLength": 200}},
        "required": ["agent", "instruction", "expected"], "additionalProperties": False}}},
    "required": ["steps"], "additionalProperties": False,
}
VERDICT_SCHEMA = {"type": "object", "properties": {"done": {"type": "boolean"},
                                                   "feedback": {"type": "string", "maxLength": 300}},
                  "required": ["done", "feedback"], "additionalProperties": False}
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 2000}},
                 "required": ["answer"], "additionalProperties": False}
# Measured on SmolLM2-135M: naming an example value ("what this step should produce") gets it copied into
# every step; this wording gets the task's own words more often (see the README's team section).
PLANNER = ("Plan the user's task as steps for these agents:\n{agents}\nEach step names one agent and tells it "
           "exactly what to do for the task, using the task's own words. Use as few steps as the task needs "
           "(at most {n}). Answer in JSON: {{\"steps\": [{{\"agent\", \"instruction\", \"expected\"}}]}}.")


class PlanInvalid(ValueError):
    """The model's plan does not validate."""


@dataclass
class TeamOutcome:
    """How a team run ended."""

    status: str  # succeeded | failed | cancelled
    reason: str
    result: str | None = None
    summary: str = ""


@dataclass
class TeamLimits:
    """How hard the orchestrator tries."""

    step_retries: int = 1  # extra tries of a step after the validator (or the agent) said no
    max_replans: int = 1  # re-plans of the remaining steps after a step kept failing


def plan_task(ask: Callable[..., str], task: str, feedback: list[str] | None = None, example: list[dict] | None = None,
              done: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The model's plan for `task` (or for what is left of it, after `done`), validated; PlanInvalid if not."""
    user = f"Task: {task}\n"
    if example:
        user += f"A plan that worked for a similar task: {json.dumps({'steps': example})}\n"
    if done:
        user += f"Already done:\n{results_text(done, 300)}\nPlan only the remaining steps.\n"
    for f in feedback or []:
        user += f"The person's feedback on an earlier plan: {f}\n"
    messages = [{"role": "system", "content": PLANNER.format(agents=describe_agents(), n=MAX_PLAN_STEPS)},
                {"role": "user", "content": user}]
    text = ask(messages, PLAN_SCHEMA, 600)
    try:
        return [s.model_dump() for s in Plan.model_validate_json(text).steps]
    except ValidationError as exc:
        raise PlanInvalid(f"the model's plan is not valid: {exc.errors()[0]['msg']} in {text[:300]!r}") from exc


def fallback_plan(task: str) -> list[dict[str, Any]]:
    """One web step doing the whole task: what a person is shown when the model's plan does not validate."""
    return [PlanStep(agent="web", instruction=task[:2000], expected="").model_dump()]


def validate(ask: Callable[..., str], task: str, step: PlanStep, result: StepResult) -> tuple[bool, str]:
    """The validator: did the step's result meet what was expected? (done, feedback)."""
    messages = [{"role": "system", "content": "You check one step of a task. Answer as JSON: "
                                              "{\"done\": true|false, \"feedback\": \"what is missing, if anything\"}."},
                {"role": "user", "content": f"Task: {task}\nStep: {step.instruction}\nExpected: "
                                            f"{step.expected or '(not stated)'}\nResult: {result.summary}\n"
                                            "Did the step do what was expected?"}]
    try:
        verdict = json.loads(ask(messages, VERDICT_SCHEMA, 120))
        return bool(verdict.get("done")), str(verdict.get("feedback") or "")
    except (json.JSONDecodeError, AttributeError):
        return True, ""  # an unreadable verdict does not fail a step its agent reported as done


def final_answer(ask: Callable[..., str], task: str, done: list[dict[str, Any]]) -> str:
    """The run's answer, written from the steps' results."""
    messages = [{"role": "system", "content": "Write the final answer to the user's task from the steps' results. "
                                              "Answer as JSON: {\"answer\": \"...\"}."},
                {"role": "user", "content": f"Task: {task}\nSteps and results:\n{results_text(done)}"}]
    try:
        return str(json.loads(ask(messages, ANSWER_SCHEMA, 400)).get("answer") or "")
    except (json.JSONDecodeError, AttributeError):
        return done[-1]["summary"] if done else ""


def summarise(done: list[dict[str, Any]]) -> str:
    """One line per step: which agent did what, and how it went."""
    return "\n".join(f"{d['index'] + 1}. {d['agent']}: {d['instruction']} -> "
                     f"{'done' if d['ok'] else 'failed'}: {str(d['summary'])[:200]}" for d in done)


def execute_plan(host: TeamHost, steps: list[dict[str, Any]], done: list[dict[str, Any]], limits: TeamLimits,
                 progress: Callable[[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]], None],
                 cancelled: Callable[[], bool]) -> TeamOutcome:
    """Run the steps after those in `done`; `progress(done, steps, event)` follows each try and re-plan."""
    replans = 0
    i = len(done)
    while i < len(steps):
        if cancelled():
            return TeamOutcome("cancelled", "cancelled by user", summary=summarise(done))
        step = PlanStep.model_validate(steps[i])
        agent = AGENTS[step.agent]
        feedback: str | None = None
        entry: dict[str, Any] = {}
        for attempt in range(1 + limits.step_retries):
            progress(done, steps, {"phase": "started", "index": i, "agent": step.agent, "instruction": step.instruction,
                                   "attempt": attempt + 1})
            try:
                result = agent.run(step, done, feedback, host)
            except TeamStop as stop:
                return TeamOutcome(stop.status, stop.reason, summary=summarise(done))
            ok, feedback = (validate(host.ask, host.task, step, result) if result.ok else (False, result.summary))
            entry = {"index": i, "agent": step.agent, "instruction": step.instruction, "ok": ok,
                     "summary": result.summary, "data": result.data, "attempt": attempt + 1,
                     **({"feedback": feedback} if not ok else {})}
            # One write per try: the ledger (with this step once it is done) and the try's event.
            progress([*done, entry] if ok else done, steps,
                     {"phase": "finished", "index": i, "agent": step.agent, "attempt": attempt + 1, "ok": ok,
                      "summary": result.summary[:500], **({"feedback": feedback} if not ok else {})})
            if ok or cancelled():
                break
        if entry.get("ok"):
            done = [*done, entry]
            i += 1
            continue
        if cancelled():
            return TeamOutcome("cancelled", "cancelled by user", summary=summarise(done))
        if replans >= limits.max_replans:
            return TeamOutcome("failed", f"step {i + 1} ({step.agent}) failed: {feedback}"[:500],
                               summary=summarise([*done, entry]))
        replans += 1
        try:
            rest = plan_task(host.ask, host.task, [f"step {i + 1} ({step.agent}: {step.instruction}) failed: {feedback}"],
                             done=done)
        except PlanInvalid as exc:
            return TeamOutcome("failed", f"step {i + 1} failed and re-planning failed: {exc}"[:500],
                               summary=summarise([*done, entry]))
        steps = [*steps[:i], *rest]
        progress(done, steps, {"replanned": True, "from_step": i, "steps": rest})
    answer = final_answer(host.ask, host.task, done)
    return TeamOutcome("succeeded", "finished", answer, summarise(done))
