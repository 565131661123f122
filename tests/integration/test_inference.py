"""The policy client against the real vLLM server serving the embedded model."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from sparkpilot.errors import NotFound
from sparkpilot.llm_client import InferenceUnavailable, LLMClient
from sparkpilot.settings import get_settings
from tests.helpers import free_port
from tests.real_model import api, stack  # noqa: F401 - this module's stack serves the real model


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["click", "fill", "finish"]
    bid: str


def _run(coro):  # noqa: ANN001, ANN202
    return asyncio.run(coro)


async def _complete(url: str, **kw):  # noqa: ANN003, ANN202
    async with LLMClient(url, get_settings().inference_model, timeout_s=120) as client:
        return await client.complete(**kw)


def test_chat_completion_answers_with_metrics(vllm, settings_override) -> None:
    out = _run(_complete(vllm, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16))
    assert out.text.strip()
    m = out.metrics
    assert m.model == "smollm2-135m-instruct" and m.attempts == 1
    assert m.prompt_tokens and m.prompt_tokens > 3 and 0 < m.completion_tokens <= 16
    assert 0 < m.ttft_ms <= m.latency_ms


def test_json_schema_output_parses_against_the_schema(vllm, settings_override) -> None:
    schema = Action.model_json_schema()
    out = _run(_complete(vllm, messages=[{"role": "user", "content": "Click the element with bid 12."}],
                         json_schema=schema, max_tokens=60))
    action = Action.model_validate_json(out.text)
    assert action.action in ("click", "fill", "finish")


def test_unknown_model_is_not_found(vllm, settings_override) -> None:
    async def go():  # noqa: ANN202
        async with LLMClient(vllm, "no-such-model") as client:
            return await client.complete([{"role": "user", "content": "hi"}], max_tokens=4)

    with pytest.raises(NotFound) as exc:
        _run(go())
    assert exc.value.code == "model_not_found"


def test_unreachable_server_is_a_typed_error_after_retries(settings_override) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"

    async def go():  # noqa: ANN202
        async with LLMClient(url, "m", retries=3) as client:
            return await client.complete([{"role": "user", "content": "hi"}])

    t0 = time.time()
    with pytest.raises(InferenceUnavailable) as exc:
        _run(go())
    assert "after 3 attempts" in exc.value.message and exc.value.status_code == 503
    assert time.time() - t0 < 15


def test_gateway_health_reports_inference(stack) -> None:
    assert httpx.get(stack.base_url + "/health").json()["checks"]["inference"] == "ok"


def test_health_says_degraded_when_inference_is_down() -> None:
    from services.gateway.routers.health import check_inference

    assert _run(check_inference(f"http://127.0.0.1:{free_port()}/v1")).startswith("down")
    assert _run(check_inference("")) == "not configured"


def _envelope(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"type", "message", "code"} and err["code"] == code, err


@pytest.mark.security
def test_direct_inference_takes_text_and_inline_images_only(api: httpx.Client) -> None:
    def ask(content: object, role: str = "user") -> httpx.Response:
        return api.post("/api/v1/inference", json={"messages": [{"role": role, "content": content}], "max_tokens": 4})

    for content in ([{"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data/"}}],
                    [{"type": "image_url", "image_url": "http://127.0.0.1:6379/"}],
                    [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}],
                    [{"type": "text", "text": "hi", "extra": 1}], 42):
        _envelope(ask(content), 422, "validation_error")
    _envelope(ask("hi", role="tool"), 422, "validation_error")
    # The embedded text model cannot read an image: the model server's 400 is the caller's 422, not a 502.
    pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    _envelope(ask([{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": pixel}}]),
              422, "inference_refused")
    assert api.post("/api/v1/inference", json={"prompt": "Say hi", "max_tokens": 2}).status_code == 200
