"""Model registry against the real vLLM: register, load at runtime, select, unload, evict, promote, roll back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers import FINISH, ROOT, Stack, free_port, wait_terminal
from tests.real_model import api, stack  # noqa: F401 - this module's stack serves the real model

INFERENCE_PY = ROOT / ".venv-inference" / "bin" / "python"


def _vllm_models(stack: Stack) -> set[str]:
    url = stack.env.get("SPARKPILOT_INFERENCE_URL") or ""
    return {m["id"] for m in httpx.get(url + "/models", timeout=10).json()["data"]}


@pytest.fixture(scope="module")
def adapter_dirs(base_env, vllm) -> dict[str, Path]:
    """Three good tiny LoRAs made with peft over the served model, plus broken variants, in the adapters folder."""
    from sparkpilot.settings import InferenceSettings

    model_dir = InferenceSettings(_env_file=None).model_dir  # as the vllm fixture serves it
    root = Path(base_env["SPARKPILOT_ADAPTERS_DIR"])
    root.mkdir(parents=True, exist_ok=True)
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


def _current(api: httpx.Client, name: str) -> list[str]:
    return [m["name"] for m in api.get("/api/v1/models").json() if m["name"].startswith(name + "@") and m["current"]]


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
    reg = api.post("/api/v1/models/adapters", json={"name": "alpha", "path": "a"})  # relative to the adapters folder
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
    from tests.helpers import in_process_gateway, migrated

    env = dict(base_env, DATABASE_URL=f"sqlite:///{tmp_path / 'down.db'}",
               SPARKPILOT_INFERENCE_URL=f"http://127.0.0.1:{free_port()}/v1", SPARKPILOT_INFERENCE_RETRIES="2")
    migrated(env["DATABASE_URL"])
    with in_process_gateway(env, env["SPARKPILOT_ADMIN_TOKEN"]) as gw:
        resp = gw.post("/api/v1/inference", json={"prompt": "hi"})
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "inference_unavailable"
        health = gw.get("/health").json()
        assert health["status"] == "degraded" and health["checks"]["inference"].startswith("down")


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


def test_registry_writes_need_an_admin(api, user_api, stack, adapter_dirs) -> None:
    assert api.post("/api/v1/models/adapters", json={"name": "guarded", "path": "a"}).status_code == 201
    before, loaded_before = api.get("/api/v1/models").json(), _vllm_models(stack)
    writes = [("/api/v1/models/adapters", {"name": "guarded", "path": "b"}),
              ("/api/v1/models/adapters/guarded/load", None), ("/api/v1/models/adapters/guarded@v1/unload", None),
              ("/api/v1/models/adapters/guarded/rollback", None), ("/api/v1/models/adapters/guarded@v1/promote", None)]
    for path, body in writes:
        resp = user_api.post(path, json=body)
        assert _err(resp, 403) == "forbidden", path
        assert set(resp.json()["error"]) == {"type", "message", "code"} and resp.json()["error"]["type"] == "forbidden"
    assert user_api.get("/api/v1/models").status_code == 200
    assert user_api.get("/api/v1/models").json() == before == api.get("/api/v1/models").json()
    assert user_api.get("/api/v1/models/cache").status_code == 200
    assert _vllm_models(stack) == loaded_before


def test_adapter_paths_outside_the_adapters_folder_are_refused(api, stack, adapter_dirs, tmp_path) -> None:
    root = adapter_dirs["a"].parent
    outside, sibling = tmp_path / "outside", root.parent / "sibling"
    for good_but_elsewhere in (outside, sibling):
        shutil.copytree(adapter_dirs["a"], good_but_elsewhere, dirs_exist_ok=True)
    (root / "escape-link").symlink_to(outside, target_is_directory=True)
    before, loaded_before = api.get("/api/v1/models").json(), _vllm_models(stack)
    for path in (str(outside), os.path.relpath(outside, root), "../sibling", str(root / ".." / "sibling"),
                 "a/../../sibling", "escape-link", str(root / "escape-link"), str(root), "."):
        resp = api.post("/api/v1/models/adapters", json={"name": "escape", "path": path})
        assert _err(resp, 422) == "adapter_path", path
    assert api.get("/api/v1/models").json() == before
    assert _vllm_models(stack) == loaded_before
    (root / "inside-link").symlink_to(adapter_dirs["b"], target_is_directory=True)  # a link inside stays inside
    assert api.post("/api/v1/models/adapters", json={"name": "linked", "path": "inside-link"}).status_code == 201


def test_promote_and_rollback_move_current(api, adapter_dirs) -> None:
    for key in ("a", "b", "c"):
        assert api.post("/api/v1/models/adapters", json={"name": "promo", "path": key}).json()["current"]
    assert _current(api, "promo") == ["promo@v3"]
    promoted = api.post("/api/v1/models/adapters/promo@v1/promote")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["name"] == "promo@v1" and promoted.json()["current"]
    assert _current(api, "promo") == ["promo@v1"]
    assert _err(api.post("/api/v1/models/adapters/promo/rollback"), 409) == "no_previous_version"
    assert api.post("/api/v1/models/adapters/promo@v3/promote").status_code == 200
    assert api.post("/api/v1/models/adapters/promo/rollback").json()["name"] == "promo@v2"
    assert _current(api, "promo") == ["promo@v2"]
    assert _err(api.post("/api/v1/models/adapters/promo@v9/promote"), 404) == "adapter_not_found"
    assert _err(api.post("/api/v1/models/adapters/nope/promote"), 404) == "adapter_not_found"
    assert _err(api.post("/api/v1/models/adapters/promo@x/promote"), 422) == "adapter_ref"


def test_register_without_promote_keeps_current(api, adapter_dirs) -> None:
    first = api.post("/api/v1/models/adapters", json={"name": "quiet", "path": "a", "promote": False})
    assert first.status_code == 201 and first.json()["name"] == "quiet@v1" and not first.json()["current"]
    assert _current(api, "quiet") == []
    assert _err(api.post("/api/v1/inference", json={"prompt": "x", "adapter": "quiet"}), 404) == "adapter_not_promoted"
    assert api.post("/api/v1/models/adapters/quiet@v1/promote").json()["current"]
    second = api.post("/api/v1/models/adapters", json={"name": "quiet", "path": "b", "promote": False}).json()
    assert second["name"] == "quiet@v2" and not second["current"]
    assert _current(api, "quiet") == ["quiet@v1"]


def test_runs_use_the_model_they_name_fixed_at_creation(api, adapter_dirs, pages) -> None:
    def submit(**extra) -> httpx.Response:  # noqa: ANN003
        return api.post("/api/v1/runs", json={"task": "m", "start_url": pages.url + "/index.html", **FINISH, **extra})

    total = api.get("/api/v1/runs").json()["total"]
    assert _err(submit(model="nosuch"), 404) == "adapter_not_found"
    assert _err(submit(model="nosuch@v1"), 404) == "adapter_not_found"
    assert _err(submit(model="bad@ref"), 422) == "adapter_ref"
    assert api.get("/api/v1/runs").json()["total"] == total  # nothing stored
    api.post("/api/v1/models/adapters", json={"name": "pick", "path": "a"})
    api.post("/api/v1/models/adapters", json={"name": "pick", "path": "b", "promote": False})
    api.post("/api/v1/models/adapters", json={"name": "unpromoted", "path": "c", "promote": False})
    assert _err(submit(model="unpromoted"), 404) == "adapter_not_promoted"

    ids = {}
    ids["default"] = submit().json()
    ids["base"] = submit(model="smollm2-135m-instruct").json()
    ids["v1"] = submit(model="pick").json()
    assert api.post("/api/v1/models/adapters/pick@v2/promote").status_code == 200
    ids["v2"] = submit(model="pick").json()
    ids["pinned"] = submit(model="pick@v1").json()
    assert api.post("/api/v1/models/adapters/pick/rollback").status_code == 200
    ids["back"] = submit(model="pick").json()
    expected = {"default": "smollm2-135m-instruct", "base": "smollm2-135m-instruct", "v1": "pick@v1",
                "v2": "pick@v2", "pinned": "pick@v1", "back": "pick@v1"}
    assert {k: r["model"] for k, r in ids.items()} == expected
    for key, run in ids.items():  # stored, and not moved by later promotions
        got = api.get(f"/api/v1/runs/{run['id']}").json()
        assert got["model"] == expected[key] and "reward" in got
    for run in ids.values():
        wait_terminal(api, run["id"])


def test_a_run_naming_an_adapter_is_decided_by_it(api, stack, adapter_dirs, pages) -> None:
    assert api.post("/api/v1/models/adapters", json={"name": "decider", "path": "a"}).status_code == 201
    body = {"task": "Press Go.", "start_url": pages.url + "/agent.html", "max_steps": 1, "model": "decider"}
    run = api.post("/api/v1/runs", json=body).json()
    assert run["model"] == "decider@v1" and run["policy"] == {"type": "model"}
    done = wait_terminal(api, run["id"], timeout=240)
    assert done["status"] in ("succeeded", "failed") and done["reason"], done
    assert "decider@v1" in _vllm_models(stack)  # the worker loaded it into vLLM
    steps = api.get(f"/api/v1/runs/{run['id']}/steps").json()
    assert len(steps) == 1
    step = steps[0]
    assert step["timings_ms"]["model_metrics"]["model"] == "decider@v1"  # as vLLM named the answering model
    record = api.get(f"/api/v1/runs/{run['id']}/trajectory").json()[0]
    assert record["model"] == "decider@v1" and record["raw_output"]
