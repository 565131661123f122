"""The CUDA paths (marked gpu: skipped on a machine without an NVIDIA GPU; run them where one is lent).

- vLLM with CUDA serves the embedded model through services/inference/serve.py (the command the
  compose image runs), and the real worker completes a run through it.
- The trainer's lora_train on CUDA loads the model in 4 bits (Unsloth, else bitsandbytes) and trains a few steps.

The GPU machine needs a CUDA vLLM in a venv (SPARKPILOT_TEST_CUDA_VENV, default ./.venv-cuda) and
torch + transformers + peft + bitsandbytes (and Unsloth if it installs) there; the prepared embedded model comes from services/inference/setup.sh.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sparkpilot.settings import InferenceSettings
from tests.helpers import ROOT, Stack, free_port, wait_for, wait_terminal

pytestmark = pytest.mark.gpu
CUDA_VENV = Path(os.environ.get("SPARKPILOT_TEST_CUDA_VENV", ROOT / ".venv-cuda"))
MODEL_DIR = InferenceSettings(_env_file=None).model_dir


@pytest.fixture(scope="module")
def cuda_vllm(base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM on the GPU, started by serve.py with the compose-style GPU settings."""
    assert (CUDA_VENV / "bin" / "python").exists(), f"no CUDA vLLM venv at {CUDA_VENV}"
    port = free_port()
    env = dict(base_env, SPARKPILOT_INFERENCE_VENV=str(CUDA_VENV), SPARKPILOT_INFERENCE_PORT=str(port),
               SPARKPILOT_DTYPE="bfloat16", SPARKPILOT_GPU_MEMORY_UTILIZATION="0.3", SPARKPILOT_MAX_MODEL_LEN="4096")
    log = tmp_path_factory.mktemp("cuda-vllm") / "vllm.log"
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "python"), "-m", "services.inference.serve"], cwd=ROOT,
                            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is not None or httpx.get(url + "/health", timeout=2).status_code == 200,
                 900, "CUDA vLLM to start", interval=2)
        assert proc.poll() is None, log.read_text()[-4000:]
        yield url + "/v1"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)


def test_cuda_vllm_serves_and_the_worker_completes_a_run(cuda_vllm: str, base_env: dict[str, str], pages,  # noqa: ANN001
                                                         tmp_path: Path) -> None:
    from tests.helpers import migrated

    models = httpx.get(cuda_vllm + "/models", timeout=10).json()
    assert [m["id"] for m in models["data"]][0] == "smollm2-135m-instruct"
    env = dict(base_env, SPARKPILOT_INFERENCE_URL=cuda_vllm, DATABASE_URL=f"sqlite:///{tmp_path / 'gpu.db'}",
               SPARKPILOT_QUEUE_NAME=f"{base_env['SPARKPILOT_QUEUE_NAME']}-gpu")
    migrated(env["DATABASE_URL"])
    stack = Stack(env=env, logdir=tmp_path)
    try:
        stack.start_gateway()
        stack.start_worker(concurrency=1)
        with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30) as api:
            run = api.post("/api/v1/runs", json={"task": "Press Go.", "start_url": pages.url + "/agent.html",
                                                 "max_steps": 3}).json()
            done = wait_terminal(api, run["id"], timeout=180)
            traj = api.get(f"/api/v1/runs/{run['id']}/trajectory").json()
        assert done["status"] in ("succeeded", "failed") and done["reason"], done
        assert traj and all(r["raw_output"] and r["model"] == "smollm2-135m-instruct" for r in traj)
    finally:
        stack.stop()


def test_lora_train_runs_4bit_on_cuda(tmp_path: Path) -> None:
    """The trainer's own lora_train on the GPU: Unsloth (or bitsandbytes) 4-bit loading, falling loss, an adapter."""
    example = {"messages": [{"role": "system", "content": "Answer with one JSON action."},
                            {"role": "user", "content": 'GOAL: Click Submit.\n[57] button "Submit"'}],
               "completion": '{"name":"click","args":{"bid":"57"}}'}
    (tmp_path / "train.jsonl").write_text(json.dumps(example) + "\n")
    (tmp_path / "val.jsonl").write_text("")
    hp = {"rank": 8, "alpha": 16, "learning_rate": 1e-3, "steps": 8, "batch_size": 1, "max_length": 512,
          "save_every": 4, "val_fraction": 0, "per_action_cap": 1, "seed": 0, "ema_alpha": 0.05, "rollout_tokens": 16}
    config = {"hyperparameters": hp, "out_dir": str(tmp_path / "out"), "base_model": MODEL_DIR,
              "base_name": "smollm2-135m-instruct", "init_adapter": None,
              "train": str(tmp_path / "train.jsonl"), "val": str(tmp_path / "val.jsonl")}
    (tmp_path / "config.json").write_text(json.dumps(config))
    out = subprocess.run([str(CUDA_VENV / "bin" / "python"), "-m", "services.trainer.lora_train", "--config",
                          str(tmp_path / "config.json")], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    start = next(e for e in events if e["event"] == "start")
    assert start["device"] == "cuda" and start["backend"] in ("unsloth-4bit", "bitsandbytes-4bit"), start
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
