"""The policy client: every caller's way to the OpenAI-compatible model server (vLLM).

Async, structured output by JSON schema, per-call timeout, retries with backoff on
connection errors and 5xx, a typed error when the server stays unreachable, and
latency / time-to-first-token / token counts for each call.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from sparkpilot.errors import NotFound, SparkpilotError, Unavailable


class InferenceUnavailable(Unavailable):
    """The model server could not be reached (after retries) or kept failing with 5xx."""

    code = "inference_unavailable"


class InferenceError(SparkpilotError):
    """The model server refused the request (4xx other than an unknown model)."""

    status_code = 502
    code = "inference_error"


class InferenceRefused(InferenceError):
    """The model server found the request itself bad (HTTP 400/422: too long, malformed): the caller's input."""

    status_code = 422
    code = "inference_refused"


class _Retryable(Exception):
    """A 5xx answer, worth another try."""


@dataclass
class CompletionMetrics:
    """What one call cost."""

    model: str
    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int


@dataclass
class Completion:
    """A model answer and its metrics."""

    text: str
    metrics: CompletionMetrics
    finish_reason: str | None = None
    raw_chunks: int = field(default=0, repr=False)

    def json(self) -> Any:
        """The answer parsed as JSON (raises ValueError if it is not)."""
        return json.loads(self.text)


class LLMClient:
    """Chat completions against `base_url` (…/v1), streamed so time to first token is measured."""

    def __init__(self, base_url: str, model: str, timeout_s: float = 60.0, retries: int = 3,
                 api_key: str | None = None, restart_wait_s: float = 0.0) -> None:
        if not base_url:
            raise InferenceUnavailable("no inference server configured (SPARKPILOT_INFERENCE_URL)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.retries = retries
        self.restart_wait_s = restart_wait_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                         timeout=httpx.Timeout(timeout_s, connect=5.0))

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> "LLMClient":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    @property
    def server_root(self) -> str:
        """The server's root URL (vLLM serves /tokenize and /metrics beside /v1)."""
        return self.base_url.removesuffix("/v1")

    async def tokenize(self, messages: list[dict[str, Any]], model: str | None = None) -> tuple[int, int | None]:
        """(prompt tokens as the served model counts them, chat template applied; the server's max_model_len)."""
        body = {"model": model or self.model, "messages": messages, "add_generation_prompt": True}
        try:
            async for attempt in AsyncRetrying(stop=self._stop, wait=wait_exponential(multiplier=0.5, max=8),
                                               retry=retry_if_exception_type(httpx.TransportError), reraise=True):
                with attempt:
                    resp = await self._client.post(self.server_root + "/tokenize", json=body)
        except httpx.TransportError as exc:
            raise InferenceUnavailable(f"model server at {self.base_url} unreachable: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 400:
            raise InferenceError(f"/tokenize refused: HTTP {resp.status_code}: {resp.text[:300]}")
        data = resp.json()
        return int(data["count"]), data.get("max_model_len")

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        json_schema: dict[str, Any] | None = None,
        schema_name: str = "action",
    ) -> Completion:
        """One chat completion; with `json_schema` the output is constrained to it."""
        body: dict[str, Any] = {
            "model": model or self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": json_schema, "strict": True},
            }
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=self._stop,
                wait=wait_exponential(multiplier=0.5, max=8),
                retry=retry_if_exception_type((httpx.TransportError, _Retryable)),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    return await self._stream(body, attempts)
        except (httpx.TransportError, _Retryable) as exc:
            raise InferenceUnavailable(
                f"model server at {self.base_url} unreachable after {attempts} attempts: {type(exc).__name__}: {exc}"
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _stop(self, state: RetryCallState) -> bool:
        """Stop after `retries` attempts, except that a refused connection (a restarting server) is
        retried until `restart_wait_s` has passed."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, httpx.ConnectError) and state.seconds_since_start < self.restart_wait_s:
            return False
        return state.attempt_number >= self.retries

    async def _stream(self, body: dict[str, Any], attempts: int) -> Completion:
        t0 = time.perf_counter()
        ttft = None
        parts: list[str] = []
        usage: dict[str, Any] = {}
        finish = None
        chunks = 0
        served = None
        async with self._client.stream("POST", "/chat/completions", json=body) as resp:
            if resp.status_code >= 500:
                raise _Retryable(f"HTTP {resp.status_code}: {(await resp.aread())[:300]!r}")
            if resp.status_code == 404:
                raise NotFound(f"model {body['model']!r} is not served: {(await resp.aread())[:300].decode(errors='replace')}",
                               code="model_not_found")
            if resp.status_code in (400, 422):
                raise InferenceRefused(f"the model server refused the request: "
                                       f"{(await resp.aread())[:500].decode(errors='replace')}")
            if resp.status_code >= 400:
                raise InferenceError(f"HTTP {resp.status_code}: {(await resp.aread())[:500].decode(errors='replace')}")
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue  # not break: the server ends the stream, and the line iterator closes cleanly
                chunk = json.loads(data)
                chunks += 1
                served = served or chunk.get("model")
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices", []):
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        if ttft is None:
                            ttft = (time.perf_counter() - t0) * 1000
                        parts.append(piece)
                    finish = choice.get("finish_reason") or finish
        metrics = CompletionMetrics(
            model=served or body["model"],
            latency_ms=round((time.perf_counter() - t0) * 1000, 2),
            ttft_ms=round(ttft, 2) if ttft is not None else None,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            attempts=attempts,
        )
        return Completion(text="".join(parts), metrics=metrics, finish_reason=finish, raw_chunks=chunks)
