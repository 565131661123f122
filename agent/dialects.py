"""Dialects: how the loop talks to one kind of model (its prompt and the format of its answers).

`json` is ours: the element list with ids, answers constrained to the step's JSON schema (the
embedded text model; with `input: text+image` the screenshot is attached too). `fara` is
Fara-7B's own: screenshots, `<tool_call>` answers in image pixels (agent/fara.py).
Which one a run uses follows the served model's profile (config/models.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.action_space import ActionSpace
from agent.observe import Observation
from agent.parse import ParsedAction, parse_action
from agent.prompt import build_messages, fit_messages
from agent.vision import encode_screen
from sparkpilot.profiles import ModelProfile, TEXT_DEFAULT


@dataclass
class Turn:
    """One past step, as a dialect replays it to the model."""

    index: int
    url: str
    line: str  # the action in words, e.g. `click [57] "Submit"` (with its error); empty: no valid action
    raw_output: str | None
    error: str | None


@dataclass
class Prompt:
    """The messages for the model, the same for the trajectory record (images as step references), their size."""

    messages: list[dict[str, Any]]
    tokens: int | None
    record: list[dict[str, Any]] = field(default_factory=list)
    structured: bool = True  # constrain the answer to the step's JSON schema

    def __post_init__(self) -> None:
        self.record = self.record or self.messages


class Dialect(Protocol):
    """Prompt building and answer parsing for one answer format."""

    name: str

    def prompt(self, index: int, goal: str, obs: Observation, space: ActionSpace, turns: list[Turn],
               last_error: str | None, policy: Any) -> Prompt:
        """The step's prompt, fitted to `policy.prompt_limit(space)` (PromptTooLong if it cannot fit)."""
        ...

    def parse(self, text: str, obs: Observation) -> ParsedAction:
        """The answer as one of the registered actions (ParseError: feedback for the model)."""
        ...


def image_ref(index: int, width: int, height: int) -> dict[str, Any]:
    """How a screenshot appears in a trajectory record: its step's file (artifacts/runs/RUN/step-NNNN.png), resized."""
    return {"type": "image_url", "image_url": {"url": f"step:{index}"}, "resized_to": [width, height]}


class JsonDialect:
    """Our element-list prompt; answers in the step's JSON action schema."""

    name = "json"

    def __init__(self, profile: ModelProfile = TEXT_DEFAULT) -> None:
        self.profile = profile

    def prompt(self, index: int, goal: str, obs: Observation, space: ActionSpace, turns: list[Turn],
               last_error: str | None, policy: Any) -> Prompt:
        """Fit the element list and page text to the model's context, then attach the screenshot if it reads one."""
        screen = None
        limit = policy.prompt_limit(space)
        if self.profile.input == "text+image" and obs.screenshot:
            screen = encode_screen(obs.screenshot, obs.viewport, self.profile)
            limit -= screen.tokens
        messages, tokens = fit_messages(
            lambda el, tx: build_messages(goal, obs, space, [t.line for t in turns if t.line], last_error, el, tx),
            lambda m: policy.count_tokens(m, limit), limit)
        if screen is None:
            return Prompt(messages, tokens)
        text = messages[-1]["content"]
        sent = [*messages[:-1], {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": screen.data_url}}, {"type": "text", "text": text}]}]
        record = [*messages[:-1], {"role": "user", "content": [
            image_ref(index, screen.width, screen.height), {"type": "text", "text": text}]}]
        return Prompt(sent, (tokens or 0) + screen.tokens, record)

    def parse(self, text: str, obs: Observation) -> ParsedAction:
        """The robust JSON/call parser."""
        return parse_action(text)


def dialect_for(profile: ModelProfile) -> Dialect:
    """A new dialect (per run: it may cache the run's screenshots) for a model with this profile."""
    if profile.answer == "fara":
        from agent.fara import FaraDialect

        return FaraDialect(profile)
    return JsonDialect(profile)
