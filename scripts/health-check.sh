#!/usr/bin/env bash
# Print the stack's /health and exit non-zero unless every check is ok.
set -euo pipefail
base="${SPARKPILOT_BASE_URL:-http://127.0.0.1:8000}"
body="$(curl -fsS --max-time 5 "$base/health")" || { echo "gateway unreachable at $base" >&2; exit 2; }
echo "$body"
echo "$body" | grep -q '"status":"ok"'
