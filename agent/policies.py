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

from agent.action_space import ActionSpace, target_name
from sparkpilot.llm_client import LLMClient


@dataclass
class Decision:
    """The policy's raw answer and what it cost."""

    text: str
    metrics: dict[str, Any] = field(default_factory=dict)


class Policy(Protocol):
    """Anything that turns a prompt into the model's raw answer."""

    name: str
    prompt_limit: int  # most prompt tokens, leaving room for the answer

    def count_tokens(self, messages: list[dict[str, str]]) -> int | None:
        """The prompt's length in the model's tokens (None: the policy has no tokenizer)."""
        ...

    def decide(self, messages: list[dict[str, Any]], space: ActionSpace | None) -> Decision:
        """The raw text of the next action, constrained to `space` where the policy can (None: free text)."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


# The fixed system part with the chat template, counted once per server, model and text (per process).
_HEAD_TOKENS: dict[str, int] = {}
_MAX_MODEL_LEN: dict[str, int] = {}  # per server and model, asked once per process


class ModelPolicy:
    """The served model through the policy client; each step's action space is its JSON schema."""

    name = "model"

    def __init__(self, base_url: str, model: str, timeout_s: float, retries: int, max_tokens: int = 48,
                 structured: bool = True, tokenizer_model: str | None = None, temperature: float = 0.0,
                 restart_wait_s: float = 0.0) -> None:
        # Playwright's sync API owns this thread's event loop, so the async client gets its own thread.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="policy-loop")
        self._thread.start()
        self._client = LLMClient(base_url, model, timeout_s, retries, restart_wait_s=restart_wait_s)
        self.model, self.max_tokens, self.structured = model, max_tokens, structured
        self.temperature = temperature
        self.tokenizer_model = tokenizer_model or model  # adapters share the base model's tokenizer
        self._limit: int | None = None

    @property
    def prompt_limit(self) -> int:
        """max_model_len as the server reports it, minus room for the answer (asked once)."""
        if self._limit is None:
            key = f"{self._client.base_url} {self.tokenizer_model}"
            if key not in _MAX_MODEL_LEN:
                empty = [{"role": "system", "content": ""}, {"role": "user", "content": ""}]
                _MAX_MODEL_LEN[key] = int(self._run(self._client.tokenize(empty, self.tokenizer_model))[1] or 2048)
            self._limit = _MAX_MODEL_LEN[key] - self.max_tokens
        return self._limit

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        """Prompt tokens by the server's own tokenizer and chat template (POST /tokenize).

        A byte-level BPE token covers at least one byte, so (template + fixed part, counted once)
        + the other messages' UTF-8 bytes is an upper bound; when it fits, the round trip is skipped.
        """
        head = [m if i == 0 else {"role": m["role"], "content": ""} for i, m in enumerate(messages)]
        key = json.dumps([self._client.base_url, self.tokenizer_model, head])
        if key not in _HEAD_TOKENS:
            _HEAD_TOKENS[key] = self._run(self._client.tokenize(head, self.tokenizer_model))[0]
        bound = _HEAD_TOKENS[key] + sum(len(m["content"].encode()) for m in messages[1:])
        if bound <= self.prompt_limit:
            return bound
        return self._run(self._client.tokenize(messages, self.tokenizer_model))[0]

    def decide(self, messages: list[dict[str, Any]], space: ActionSpace | None) -> Decision:
        """Ask the model, constrained to the step's action space (None: a dialect with its own format)."""
        schema = space.schema() if self.structured and space is not None else None
        out = self._run(
            self._client.complete(messages, max_tokens=self.max_tokens, temperature=self.temperature,
                                 json_schema=schema)
        )
        m = out.metrics
        return Decision(out.text, {"model": m.model, "latency_ms": m.latency_ms, "ttft_ms": m.ttft_ms,
                                   "prompt_tokens": m.prompt_tokens, "completion_tokens": m.completion_tokens,
                                   "finish_reason": out.finish_reason})

    def ask(self, messages: list[dict[str, Any]], schema: dict[str, Any], max_tokens: int) -> str:
        """A JSON answer constrained to `schema` (the team's plans, code, verdicts), greedy like decisions."""
        out = self._run(self._client.complete(messages, max_tokens=max_tokens, temperature=self.temperature,
                                             json_schema=schema, schema_name="team"))
        return out.text

    def _run(self, coro):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Close the HTTP client and stop the loop's thread."""
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class ReplayPolicy:
    """Plays scripted actions in order (each {"name": ..., **args} or a raw string); for tests and overhead.

    An action may name its element by `target` (its text, as the model writes it) instead of `bid`.
    """

    name = "replay"
    prompt_limit = 1500

    def __init__(self, actions: list[Any]) -> None:
        self.actions = list(actions)
        self.i = 0

    def count_tokens(self, messages: list[dict[str, str]]) -> None:
        """No tokenizer: the prompt builder estimates."""
        return None

    def decide(self, messages: list[dict[str, Any]], space: ActionSpace | None) -> Decision:
        """The next scripted answer."""
        if self.i >= len(self.actions):
            return Decision("(replay script exhausted)")
        item = self.actions[self.i]
        self.i += 1
        if isinstance(item, str):
            return Decision(item)
        if "target" in item and "bid" not in item and space is not None:  # name the element as the model does; its id is looked up
            bids = [b for b in space.bids.get(item.get("name", ""), []) if target_name(space.elements[b]) == item["target"]]
            item = {k: v for k, v in item.items() if k != "target"} | ({"bid": bids[0]} if bids else {})
        return Decision(json.dumps({"thought": "replay", "action": item}))

    def close(self) -> None:
        """Nothing to release."""
