#!/usr/bin/env bash
# Idempotent: the trainer's venv (torch CPU + transformers + peft + datasets), kept apart from the
# app's venv and from vLLM's, as the compose services are. ~1.5 GB, ~2 min the first time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
VENV="$("$PY" -c 'from sparkpilot.settings import get_trainer_settings as g; print(g().trainer_venv)')"
TORCH_VERSION="2.13.0"
PACKAGES="torch==$TORCH_VERSION transformers>=4.45 peft>=0.13 accelerate datasets safetensors"
stamp="$VENV/.sparkpilot-trainer-$TORCH_VERSION-$(sha256sum "$ROOT/requirements/trainer.txt" | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "==> installing the training stack into $VENV (first time: a couple of minutes, ~1.5 GB)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # The CPU build where one exists (Linux x86_64/aarch64 wheels from the PyTorch CPU index or a local mirror).
  "$VENV/bin/pip" install -q "torch==$TORCH_VERSION+cpu" 2>/dev/null || "$VENV/bin/pip" install -q "torch==$TORCH_VERSION"
  # The rest at the versions requirements/trainer.txt pins (PACKAGES are the ranges scripts/lock.sh resolves).
  grep -v '^torch==' "$ROOT/requirements/trainer.txt" | "$VENV/bin/pip" install -q --no-deps -r /dev/stdin
  touch "$stamp"
fi
