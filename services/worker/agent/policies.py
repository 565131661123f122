"""Policies decide the next action from the prompt: the model, or a scripted replay.

`replay` plays a fixed list of actions. It exists to measure the harness's own overhead and
for tests; its results are never the agent's score.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.worker.agent.actions import action_schema
from services.worker.agent.observe import Observation
from sparkpilot.policy import PolicyClient


@dataclass
class Decision:
    """The policy's raw answer and what it cost."""

    text: str
    metrics: dict[str, Any] = field(default_factory=dict)


class Policy(Protocol):
    """Anything that turns a prompt into the model's raw answer."""

    name: str

    def decide(self, messages: list[dict[str, str]], obs: Observation) -> Decision:
        """The raw text of the next action."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


class ModelPolicy:
    """The served model through the policy client, with the action schema as structured output."""

    name = "model"

    def __init__(self, base_url: str, model: str, timeout_s: float, retries: int, max_tokens: int = 200,
                 structured: bool = True) -> None:
        # Playwright's sync API owns this thread's event loop, so the async client gets its own thread.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="policy-loop")
        self._thread.start()
        self._client = PolicyClient(base_url, model, timeout_s, retries)
        self.model, self.max_tokens = model, max_tokens
        self.schema = action_schema() if structured else None

    def decide(self, messages: list[dict[str, str]], obs: Observation) -> Decision:
        """Ask the model."""
        out = self._run(
            self._client.complete(messages, max_tokens=self.max_tokens, temperature=0.0, json_schema=self.schema)
        )
        m = out.metrics
        return Decision(out.text, {"model": m.model, "latency_ms": m.latency_ms, "ttft_ms": m.ttft_ms,
                                   "prompt_tokens": m.prompt_tokens, "completion_tokens": m.completion_tokens})

    def _run(self, coro):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Close the HTTP client and stop the loop's thread."""
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class ReplayPolicy:
    """Plays scripted actions in order (each {"name": ..., **args} or a raw string); for tests and overhead."""

    name = "replay"

    def __init__(self, actions: list[Any]) -> None:
        self.actions = list(actions)
        self.i = 0

    def decide(self, messages: list[dict[str, str]], obs: Observation) -> Decision:
        """The next scripted answer."""
        if self.i >= len(self.actions):
            return Decision("(replay script exhausted)")
        item = self.actions[self.i]
        self.i += 1
        if isinstance(item, str):
            return Decision(item)
        return Decision(json.dumps({"thought": "replay", "action": item}))

    def close(self) -> None:
        """Nothing to release."""
