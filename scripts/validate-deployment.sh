#!/usr/bin/env bash
# Validate a running Sparkpilot: service health, GPU/CPU memory, disk, the served model, one direct
# inference, adapter load/unload, and one real task end to end; prints a pass/fail table and exits
# non-zero on any failure. After `docker compose up -d`: scripts/validate-deployment.sh --compose
# After `make up`: scripts/validate-deployment.sh   (options: --url, --token, --pages-url, --task-timeout)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# Standard library only: the project's venv when there is one, else the host's python3 (a DGX host).
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"
exec "$PY" "$ROOT/scripts/validate_deployment.py" "$@"
