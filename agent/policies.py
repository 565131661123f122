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

from agent.action_space import ActionSpace, answer_tokens, target_name
from sparkpilot.llm_client import LLMClient


@dataclass
class Decision:
    """The policy's raw answer and what it cost."""

    text: str
    metrics: dict[str, Any] = field(default_factory=dict)


class Policy(Protocol):
    """Anything that turns a prompt into the model's raw answer."""

    name: str

    def prompt_limit(self, space: ActionSpace | None) -> int:
        """Most prompt tokens for a step with this action space: its longest answer still fits beside them."""
        ...

    def count_tokens(self, messages: list[dict[str, str]], limit: int) -> int | None:
        """The prompt's length in the model's tokens, exact at least when near `limit` (None: no tokenizer)."""
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

    @property
    def max_model_len(self) -> int:
        """The served context length as the server reports it (asked once per process)."""
        key = f"{self._client.base_url} {self.tokenizer_model}"
        if key not in _MAX_MODEL_LEN:
            empty = [{"role": "system", "content": ""}, {"role": "user", "content": ""}]
            _MAX_MODEL_LEN[key] = int(self._run(self._client.tokenize(empty, self.tokenizer_model))[1] or 2048)
        return _MAX_MODEL_LEN[key]

    def answer_room(self, space: ActionSpace | None) -> int:
        """Tokens kept for the step's answer: the longest its schema allows, so a constrained answer is never
        cut; `max_tokens` for free text (a dialect with its own format) or a schema with no bound (an MCP tool's)."""
        return self._room(self._schema(space))

    def _schema(self, space: ActionSpace | None) -> dict[str, Any] | None:
        return space.schema() if self.structured and space is not None else None

    def _room(self, schema: dict[str, Any] | None) -> int:
        bound = answer_tokens(schema) if schema is not None else None
        return bound if bound is not None else self.max_tokens

    def prompt_limit(self, space: ActionSpace | None) -> int:
        """max_model_len minus the room for this step's answer."""
        return self.max_model_len - self.answer_room(space)

    def count_tokens(self, messages: list[dict[str, str]], limit: int) -> int:
        """Prompt tokens by the server's own tokenizer and chat template (POST /tokenize).

        A byte-level BPE token covers at least one byte, so (template + fixed part, counted once)
        + the other messages' UTF-8 bytes is an upper bound; when it fits, the round trip is skipped.
        """
        head = [m if i == 0 else {"role": m["role"], "content": ""} for i, m in enumerate(messages)]
        key = json.dumps([self._client.base_url, self.tokenizer_model, head])
        if key not in _HEAD_TOKENS:
            _HEAD_TOKENS[key] = self._run(self._client.tokenize(head, self.tokenizer_model))[0]
        bound = _HEAD_TOKENS[key] + sum(len(m["content"].encode()) for m in messages[1:])
        if bound <= limit:
            return bound
        return self._run(self._client.tokenize(messages, self.tokenizer_model))[0]

    def decide(self, messages: list[dict[str, Any]], space: ActionSpace | None) -> Decision:
        """Ask the model, constrained to the step's action space (None: a dialect with its own format)."""
        schema = self._schema(space)  # built once: the constraint and the answer's room
        out = self._run(
            self._client.complete(messages, max_tokens=self._room(schema), temperature=self.temperature,
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

    def __init__(self, actions: list[Any], start: int = 0) -> None:
        self.actions = list(actions)
        self.i = start  # a resumed run plays on from the first action it has not recorded (one step per action)

    def prompt_limit(self, space: ActionSpace | None) -> int:
        """A fixed budget: replayed answers need no room."""
        return 1500

    def count_tokens(self, messages: list[dict[str, str]], limit: int) -> None:
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
