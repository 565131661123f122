"""The team's agents behind one Protocol and registry: WebSurfer, Coder, FileSurfer, UserProxy.

An agent does one plan step and reports a StepResult. What it needs from the process it runs in
(the model, the run's browser, the sandbox, a person) comes through a TeamHost, so the same agents
run in the worker and in tests. Tool failures are results the orchestrator reads, never exceptions;
TeamStop is only for the run itself ending (cancelled, or an unanswered question that must fail it).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sparkpilot.errors import SparkpilotError
from sparkpilot.convert import to_markdown
from sparkpilot.run_files import resolve_in, write_file
from sparkpilot.team_schemas import PlanStep

SUMMARY_CHARS = 1500  # of one step's result, as later steps and the validator read it
CONTEXT_FILE = "context.json"  # earlier steps' results, written for the Coder's program


@dataclass
class StepResult:
    """What an agent reports for one step."""

    ok: bool
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


class TeamStop(Exception):
    """The run must end now (status, reason), e.g. cancelled while an agent waited."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class TeamHost(Protocol):
    """What agents need from the process they run in."""

    task: str
    workspace: Path  # the run's files folder: the Coder's only writable place, the FileSurfer's root

    def ask(self, messages: list[dict[str, Any]], schema: dict[str, Any], max_tokens: int) -> str:
        """The model's answer, constrained to the JSON schema."""
        ...

    def browse(self, goal: str) -> tuple[str, str | None, dict[str, Any]]:
        """The web agent loop on the run's page: (status, answer, {url, title, text, reason})."""
        ...

    def run_code(self, code: str) -> Any:
        """Run Python in the sandbox; a SandboxResult (exit_code, stdout, stderr, limit, files, ok)."""
        ...

    def permit(self, category: str, action: dict[str, Any], reason: str) -> str | None:
        """The approval policy (and a person, for `ask`): None to go ahead, else why not."""
        ...

    def ask_user(self, question: str) -> str | None:
        """A question for the person: their answer, or None for no answer."""
        ...


class TeamAgent(Protocol):
    """One role of the team."""

    name: str
    description: str

    def run(self, step: PlanStep, done: list[dict[str, Any]], feedback: str | None, host: TeamHost) -> StepResult:
        """Do one step, knowing the earlier steps' results and the validator's feedback on a previous try."""
        ...


AGENTS: dict[str, TeamAgent] = {}


def register(cls: type) -> type:
    """Class decorator: add one instance of the agent to the registry under its name."""
    AGENTS[cls.name] = cls()
    return cls


def results_text(done: list[dict[str, Any]], limit: int = 600) -> str:
    """Earlier steps as short lines for a prompt."""
    if not done:
        return "(none yet)"
    return "\n".join(f"{d['index'] + 1}. [{d['agent']}] {d['instruction']} -> {str(d['summary'])[:limit]}" for d in done)


def _messages(system: str, host: TeamHost, step: PlanStep, done: list[dict[str, Any]], feedback: str | None,
              extra: str = "") -> list[dict[str, Any]]:
    user = (f"Task: {host.task}\nResults so far:\n{results_text(done)}\n\nYour step: {step.instruction}\n"
            + (f"Expected: {step.expected}\n" if step.expected else "")
            + (f"Your previous try was not accepted: {feedback}\n" if feedback else "") + extra)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the model's answer is not JSON ({exc.msg}): {text[:200]!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"the model's answer is not a JSON object: {text[:200]!r}")
    return value


@register
class WebSurfer:
    """Drives the run's browser with the agent loop for one step; returns what it found and where it ended."""

    name = "web"
    description = "uses the web browser: open pages, click, type, read what a page shows"

    def run(self, step: PlanStep, done: list[dict[str, Any]], feedback: str | None, host: TeamHost) -> StepResult:
        """One web step as an agent-loop goal."""
        goal = (f"{step.instruction}\nThis is one step of the task: {host.task}\n"
                + (f"Earlier results: {results_text(done, 200)}\n" if done else "")
                + (f"A previous try was not accepted: {feedback}\n" if feedback else "")
                + "When done, finish with what you found.")
        status, answer, page = host.browse(goal)
        text = " ".join(str(page.get("text", "")).split())
        summary = (f"answer: {answer}; " if answer else "") + f"page: {page.get('title')!r} at {page.get('url')}; " \
                  f"page text: {text}"
        if status != "succeeded":
            summary = f"the web agent stopped: {page.get('reason')}; " + summary
        return StepResult(status == "succeeded", summary[:SUMMARY_CHARS], {**page, "answer": answer, "status": status})


CODE_SCHEMA = {"type": "object", "properties": {"code": {"type": "string", "maxLength": 4000}},
               "required": ["code"], "additionalProperties": False}


@register
class Coder:
    """Writes Python for a step and runs it in the sandbox (no network, limits, only the run's files writable)."""

    name = "coder"
    description = "writes and runs a Python program: compute, parse, transform data, write files"
    system = ("You write one Python 3 program for a step of a task. It runs with no network, in a folder that "
              f"holds the run's files; {CONTEXT_FILE} there is a JSON list of the earlier steps' results "
              "(agent, instruction, summary, data). Print the result. Answer as JSON: {\"code\": \"...\"}.")

    def run(self, step: PlanStep, done: list[dict[str, Any]], feedback: str | None, host: TeamHost) -> StepResult:
        """Ask for code, get it approved, write the context file, run it."""
        try:
            code = _json(host.ask(_messages(self.system, host, step, done, feedback), CODE_SCHEMA, 512)).get("code", "")
        except ValueError as exc:
            return StepResult(False, str(exc))
        if not str(code).strip():
            return StepResult(False, "the model wrote no code")
        refused = host.permit("run_code", {"name": "run_code", "args": {"code": code}}, "the Coder wants to run a program")
        if refused:
            return StepResult(False, f"the program was not run: {refused}", {"code": code})
        write_file(host.workspace, CONTEXT_FILE, json.dumps(done, default=str, indent=1))
        try:
            res = host.run_code(code)
        except RuntimeError as exc:  # the sandbox cannot start here (bubblewrap missing, namespaces refused)
            return StepResult(False, f"the program could not run: {exc}", {"code": code})
        summary = f"exit code {res.exit_code}" + (f" ({res.limit} limit)" if res.limit else "") + \
                  f"; stdout: {res.stdout.strip()[-800:]}" + (f"; stderr: {res.stderr.strip()[-600:]}" if not res.ok else "") + \
                  (f"; files written: {', '.join(f for f in res.files if f != CONTEXT_FILE)}" if res.files else "") + \
                  (f"; links and special files removed: {', '.join(res.removed)}" if res.removed else "")
        return StepResult(res.ok, summary[:SUMMARY_CHARS],
                          {"code": code, "exit_code": res.exit_code, "stdout": res.stdout[-4000:],
                           "stderr": res.stderr[-2000:], "limit": res.limit, "files": res.files})


FILE_SCHEMA = {"type": "object", "properties": {
    "operation": {"type": "string", "enum": ["list", "read", "write", "delete"]},
    "path": {"type": "string", "maxLength": 200},
    "content": {"type": "string", "maxLength": 20000}},
    "required": ["operation", "path", "content"], "additionalProperties": False}
READ_CHARS = 4000


def convert(path: Path) -> str:
    """A file as text: Markdown from PDF, DOCX, HTML and friends via markitdown, plain text as is."""
    if path.suffix.lower() in (".txt", ".md", ".csv", ".json", ".log", ".py", ".yaml", ".yml", ".xml"):
        return path.read_text(errors="replace")
    return to_markdown(path, path.name, any_format=True)  # in a child process with limits


@register
class FileSurfer:
    """Lists, reads (converted to text), writes and deletes files in the run's files folder, never outside it."""

    name = "file"
    description = "lists, reads (PDF, DOCX, HTML, CSV, JSON, text) and writes files in the run's folder"
    system = ("You handle files for a step of a task, in the run's files folder. Answer as JSON: "
              "{\"operation\": \"list\"|\"read\"|\"write\"|\"delete\", \"path\": \"relative/path\", "
              "\"content\": \"text to write, else empty\"}.")

    def run(self, step: PlanStep, done: list[dict[str, Any]], feedback: str | None, host: TeamHost) -> StepResult:
        """One file operation chosen by the model."""
        listing = ", ".join(sorted(str(p.relative_to(host.workspace)) for p in host.workspace.rglob("*") if p.is_file())) \
            if host.workspace.is_dir() else ""
        try:
            op = _json(host.ask(_messages(self.system, host, step, done, feedback, f"Files: {listing or '(none)'}\n"),
                                FILE_SCHEMA, 1024))
        except ValueError as exc:
            return StepResult(False, str(exc))
        return self.apply(str(op.get("operation")), str(op.get("path", "")), str(op.get("content", "")), host)

    def apply(self, operation: str, relative: str, content: str, host: TeamHost) -> StepResult:
        """Do one operation; paths outside the folder (absolute, `..`, symlinks out) are refused as results."""
        root = host.workspace
        root.mkdir(parents=True, exist_ok=True)
        if operation == "list":
            files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
            return StepResult(True, f"files: {', '.join(files) or '(none)'}", {"files": files})
        try:
            path = resolve_in(root, relative)
        except SparkpilotError as exc:
            return StepResult(False, f"refused: {exc.message}", {"path": relative})
        action = {"name": f"file_{operation}", "args": {"path": relative}}
        if operation == "read":
            if not path.is_file():
                return StepResult(False, f"no file {relative!r}", {"path": relative})
            try:
                text = convert(path)
            except Exception as exc:  # noqa: BLE001 - any converter failure is the model's to read
                return StepResult(False, f"could not convert {relative!r}: {type(exc).__name__}: {exc}")
            return StepResult(True, f"{relative}: {text[:READ_CHARS]}", {"path": relative, "chars": len(text)})
        if operation == "write":
            if path.exists():
                refused = host.permit("overwrite_file", action, f"the FileSurfer wants to overwrite {relative}")
                if refused:
                    return StepResult(False, f"{relative} was not overwritten: {refused}", {"path": relative})
            try:
                write_file(root, relative, content)
            except SparkpilotError as exc:
                return StepResult(False, f"refused: {exc.message}", {"path": relative})
            return StepResult(True, f"wrote {len(content)} characters to {relative}", {"path": relative})
        if operation == "delete":
            if not path.exists():
                return StepResult(False, f"no file {relative!r}", {"path": relative})
            refused = host.permit("delete_file", action, f"the FileSurfer wants to delete {relative}")
            if refused:
                return StepResult(False, f"{relative} was not deleted: {refused}", {"path": relative})
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            return StepResult(True, f"deleted {relative}", {"path": relative})
        return StepResult(False, f"unknown file operation {operation!r}")


@register
class UserProxy:
    """Asks the person the step's question and waits for the answer (or its timeout)."""

    name = "user"
    description = "asks the person a question when only they know the answer or must decide"

    def run(self, step: PlanStep, done: list[dict[str, Any]], feedback: str | None, host: TeamHost) -> StepResult:
        """The step's instruction is the question."""
        answer = host.ask_user(step.instruction)
        if answer is None:
            return StepResult(True, "the person did not answer", {"answer": None})
        return StepResult(True, f"the person answered: {answer}", {"answer": answer})


def describe_agents() -> str:
    """One line per registered agent, for the planner's prompt."""
    return "\n".join(f"- {a.name}: {a.description}" for a in AGENTS.values())

