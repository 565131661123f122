"""Model registry against the real vLLM: register, load at runtime, select, unload, evict, roll back."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, Stack, free_port

INFERENCE_PY = ROOT / ".venv-inference" / "bin" / "python"


def _vllm_models(stack: Stack) -> set[str]:
    url = stack.env.get("SPARKPILOT_INFERENCE_URL") or ""
    return {m["id"] for m in httpx.get(url + "/models", timeout=10).json()["data"]}


@pytest.fixture(scope="module")
def adapter_dirs(tmp_path_factory, vllm) -> dict[str, Path]:
    """Three good tiny LoRAs made with peft over the served model, plus broken variants."""
    from sparkpilot.settings import InferenceSettings

    model_dir = InferenceSettings(_env_file=None).model_dir  # as the vllm fixture serves it
    root = tmp_path_factory.mktemp("adapters")
    dirs = {}
    for i, name in enumerate(("a", "b", "c")):
        subprocess.run([str(INFERENCE_PY), str(ROOT / "tests" / "make_adapter.py"), str(model_dir), str(root / name),
                        "--seed", str(i)], check=True, capture_output=True)
        dirs[name] = root / name
    subprocess.run([str(INFERENCE_PY), str(ROOT / "tests" / "make_adapter.py"), str(model_dir), str(root / "big"),
                    "--rank", "16"], check=True, capture_output=True)
    dirs["big"] = root / "big"
    dirs["empty"] = root / "empty"
    dirs["empty"].mkdir()
    dirs["other_base"] = root / "other_base"
    shutil.copytree(dirs["a"], dirs["other_base"])
    cfg = json.loads((dirs["other_base"] / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "meta-llama/Llama-3-8B"
    (dirs["other_base"] / "adapter_config.json").write_text(json.dumps(cfg))
    return dirs


def _err(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    return resp.json()["error"]["code"]


def test_bad_adapter_folders_are_refused_and_change_nothing(api, stack, adapter_dirs) -> None:
    before = api.get("/api/v1/models").json()
    loaded_before = _vllm_models(stack)
    cases = {"empty": "adapter_invalid", "big": "adapter_rank", "other_base": "adapter_base_mismatch"}
    for key, code in cases.items():
        resp = api.post("/api/v1/models/adapters", json={"name": f"bad-{key}", "path": str(adapter_dirs[key])})
        assert _err(resp, 422) == code
    assert _err(api.post("/api/v1/models/adapters", json={"name": "rel", "path": "relative/dir"}), 422)
    assert _err(api.post("/api/v1/models/adapters", json={"name": "bad name!", "path": "/x"}), 422)
    assert api.get("/api/v1/models").json() == before
    assert _vllm_models(stack) == loaded_before


def test_register_load_select_unload(api, stack, adapter_dirs) -> None:
    models = api.get("/api/v1/models").json()
    assert models[0]["kind"] == "base" and models[0]["name"] == "smollm2-135m-instruct"
    reg = api.post("/api/v1/models/adapters", json={"name": "alpha", "path": str(adapter_dirs["a"])})
    assert reg.status_code == 201, reg.text
    assert reg.json()["name"] == "alpha@v1" and reg.json()["status"] == "registered" and reg.json()["rank"] == 4

    loaded = api.post("/api/v1/models/adapters/alpha/load")
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["status"] == "loaded" and "alpha@v1" in _vllm_models(stack)

    out = api.post("/api/v1/inference", json={"prompt": "Say hi.", "adapter": "alpha", "max_tokens": 8})
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["adapter"] == "alpha@v1" and body["model"] == "alpha@v1" and body["completion_tokens"] > 0
    assert body["latency_ms"] >= body["ttft_ms"] > 0

    base = api.post("/api/v1/inference", json={"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8})
    assert base.status_code == 200 and base.json()["adapter"] is None

    unloaded = api.post("/api/v1/models/adapters/alpha@v1/unload")
    assert unloaded.json()["status"] == "registered" and "alpha@v1" not in _vllm_models(stack)


def test_lru_eviction_past_max_loras(api, stack, adapter_dirs) -> None:
    for name, key in (("e1", "a"), ("e2", "b"), ("e3", "c")):
        assert api.post("/api/v1/models/adapters", json={"name": name, "path": str(adapter_dirs[key])}).status_code == 201
    before = api.get("/api/v1/models/cache").json()
    for name in ("e1", "e2", "e1", "e3"):  # e1 used again, so e2 is the least recently used
        assert api.post(f"/api/v1/models/adapters/{name}/load").status_code == 200
    cache = api.get("/api/v1/models/cache").json()
    assert cache["max_loras"] == 2 and len(cache["loaded"]) <= 2
    assert set(cache["loaded"]) == {"e1@v1", "e3@v1"}
    assert cache["hits"] - before["hits"] == 1
    assert cache["misses"] - before["misses"] == 3
    assert cache["evictions"] - before["evictions"] >= 1
    served = _vllm_models(stack)
    assert {"e1@v1", "e3@v1"} <= served and "e2@v1" not in served


def test_versions_and_rollback(api, adapter_dirs) -> None:
    api.post("/api/v1/models/adapters", json={"name": "roll", "path": str(adapter_dirs["a"])})
    v2 = api.post("/api/v1/models/adapters", json={"name": "roll", "path": str(adapter_dirs["b"])}).json()
    assert v2["name"] == "roll@v2" and v2["current"] is True
    back = api.post("/api/v1/models/adapters/roll/rollback")
    assert back.status_code == 200 and back.json()["name"] == "roll@v1" and back.json()["current"]
    out = api.post("/api/v1/inference", json={"prompt": "hi", "adapter": "roll", "max_tokens": 4}).json()
    assert out["adapter"] == "roll@v1"
    assert _err(api.post("/api/v1/models/adapters/roll/rollback"), 409) == "no_previous_version"
    listed = {m["name"]: m for m in api.get("/api/v1/models").json()}
    assert listed["roll@v1"]["current"] and not listed["roll@v2"]["current"]


def test_unknown_names_and_bad_requests(api) -> None:
    assert _err(api.post("/api/v1/models/adapters/nope/load"), 404) == "adapter_not_found"
    assert _err(api.post("/api/v1/inference", json={"prompt": "x", "adapter": "nope"}), 404) == "adapter_not_found"
    assert _err(api.post("/api/v1/inference", json={"prompt": "x", "model": "gpt-9"}), 404) == "model_not_found"
    assert _err(api.post("/api/v1/inference", json={"prompt": "x", "messages": [{"role": "user", "content": "y"}]}), 422)
    assert _err(api.post("/api/v1/inference", json={}), 422)
    assert _err(api.post("/api/v1/inference", json={"prompt": "x", "max_tokens": 0}), 422)
    assert _err(api.post("/api/v1/models/adapters/x@vv/load"), 422) == "adapter_ref"


def test_inference_down_is_503_and_health_degraded(base_env, tmp_path) -> None:
    from sparkpilot.db.migrate import upgrade

    env = dict(base_env, DATABASE_URL=f"sqlite:///{tmp_path / 'down.db'}",
               SPARKPILOT_INFERENCE_URL=f"http://127.0.0.1:{free_port()}/v1", SPARKPILOT_INFERENCE_RETRIES="2")
    upgrade(env["DATABASE_URL"])
    gw = Stack(env=env, logdir=tmp_path)
    gw.start_gateway()
    try:
        headers = {"Authorization": f"Bearer {gw.token}"}
        resp = httpx.post(gw.base_url + "/api/v1/inference", json={"prompt": "hi"}, headers=headers, timeout=60)
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "inference_unavailable"
        health = httpx.get(gw.base_url + "/health").json()
        assert health["status"] == "degraded" and health["checks"]["inference"].startswith("down")
    finally:
        gw.stop()


def test_adapter_the_server_forgot_is_reloaded(api, stack, adapter_dirs) -> None:
    api.post("/api/v1/models/adapters", json={"name": "forgot", "path": str(adapter_dirs["c"])})
    assert api.post("/api/v1/models/adapters/forgot/load").json()["status"] == "loaded"
    vllm_base = stack.env["SPARKPILOT_INFERENCE_URL"].removesuffix("/v1")
    httpx.post(vllm_base + "/v1/unload_lora_adapter", json={"lora_name": "forgot@v1"}, timeout=30).raise_for_status()
    misses = api.get("/api/v1/models/cache").json()["misses"]
    out = api.post("/api/v1/inference", json={"prompt": "hi", "adapter": "forgot", "max_tokens": 4})
    assert out.status_code == 200, out.text
    assert api.get("/api/v1/models/cache").json()["misses"] == misses + 1
    assert "forgot@v1" in _vllm_models(stack)
