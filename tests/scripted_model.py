"""An OpenAI-compatible server whose answers are scripted: it fakes only the model's answer.

It speaks the parts of vLLM's API the product uses (/health, /v1/models, /tokenize, streamed
/v1/chat/completions, the /metrics series the System page reads) and records every request, so a test can check what the model was sent
(images, prompts) while the real worker, browser and gateway do everything else.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScriptedModel:
    """Serves `answers` in order (then a final fallback) under `model`; `requests` holds each chat body."""

    def __init__(self, model: str, answers: list[str], max_model_len: int = 16384,
                 fallback: str = "(script exhausted)") -> None:
        self.model, self.answers, self.max_model_len, self.fallback = model, list(answers), max_model_len, fallback
        # Per-conversation scripts: a request whose messages contain KEY is answered from routes[KEY].
        self.routes: dict[str, list[str]] = {}
        self.requests: list[dict[str, Any]] = []
        self.tokens = {"prompt": 0, "generation": 0}  # what it served, as vLLM's counters count it
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The OpenAI base URL (…/v1)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "ScriptedModel":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, body: dict[str, Any]) -> str:
        with self._lock:
            self.requests.append(body)
            blob = json.dumps(body.get("messages", []))
            for key, answers in self.routes.items():
                if key in blob:
                    return answers.pop(0) if answers else self.fallback
            return self.answers.pop(0) if self.answers else self.fallback

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:  # quiet
                pass

            def _json(self, status: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/health":
                    return self._json(200, {})
                if self.path == "/v1/models":
                    return self._json(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})
                if self.path == "/metrics":
                    return self._metrics()
                return self._json(404, {"error": "not found"})

            def _metrics(self) -> None:
                label = f'{{model_name="{outer.model}"}}'
                lines = [f"vllm:prompt_tokens_total{label} {outer.tokens['prompt']}",
                         f"vllm:generation_tokens_total{label} {outer.tokens['generation']}",
                         f"vllm:num_requests_running{label} 0", f"vllm:num_requests_waiting{label} 0",
                         f"vllm:kv_cache_usage_perc{label} 0.0"]
                raw = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path == "/tokenize":
                    return self._json(200, {"count": len(json.dumps(body.get("messages", []))) // 4,
                                            "max_model_len": outer.max_model_len})
                if self.path != "/v1/chat/completions":
                    return self._json(404, {"error": "not found"})
                if body.get("model") != outer.model:
                    return self._json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
                text = outer._next(body)
                with outer._lock:
                    outer.tokens["prompt"] += 100
                    outer.tokens["generation"] += max(1, len(text) // 4)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunks = [{"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
                          {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                          {"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": len(text) // 4}}]
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps({'model': outer.model, **chunk})}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        return Handler
