"""The CUDA paths (marked gpu: skipped on a machine without an NVIDIA GPU; run them where one is lent).

- vLLM with CUDA serves the embedded model through services/inference/serve.py (the command the
  compose image runs), and the real worker completes a run through it.
- LoRA training with transformers + peft on CUDA (the trainer image's stack) runs a few steps.

The GPU machine needs a CUDA vLLM in a venv (SPARKPILOT_TEST_CUDA_VENV, default ./.venv-cuda) and
torch + transformers + peft there; the prepared embedded model comes from services/inference/setup.sh.
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
    from sparkpilot.db.migrate import upgrade

    models = httpx.get(cuda_vllm + "/models", timeout=10).json()
    assert [m["id"] for m in models["data"]][0] == "smollm2-135m-instruct"
    env = dict(base_env, SPARKPILOT_INFERENCE_URL=cuda_vllm, DATABASE_URL=f"sqlite:///{tmp_path / 'gpu.db'}",
               SPARKPILOT_QUEUE_NAME=f"{base_env['SPARKPILOT_QUEUE_NAME']}-gpu")
    upgrade(env["DATABASE_URL"])
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


def test_lora_training_steps_on_cuda(tmp_path: Path) -> None:
    """A few LoRA steps of the embedded model on the GPU: finite, falling loss; adapter weights change."""
    script = r'''
import json, sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
assert torch.cuda.is_available()
model_dir, out = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16).cuda()
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
text = tok.apply_chat_template([{"role": "user", "content": "GOAL: Click Submit.\n[57] button \"Submit\""},
                                {"role": "assistant", "content": '{"action":"click","target":"Submit","bid":"57"}'}],
                               tokenize=False)
batch = tok(text, return_tensors="pt").to("cuda")
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
losses = []
for _ in range(8):
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward(); opt.step(); opt.zero_grad(); losses.append(loss.item())
changed = any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)
model.save_pretrained(out)
print(json.dumps({"losses": losses, "changed": changed}))
'''
    python = CUDA_VENV / "bin" / "python"
    out = subprocess.run([str(python), "-c", script, MODEL_DIR, str(tmp_path / "adapter")], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(l == l and l < 100 for l in result["losses"]) and result["losses"][-1] < result["losses"][0]
    assert result["changed"]
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
