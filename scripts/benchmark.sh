#!/usr/bin/env bash
# Sparkpilot benchmarks: scripts/benchmark.sh SUITE [options]   (scripts/benchmark.sh SUITE --help for options)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KNOWN_SUITES="platform"

usage() {
  echo "usage: scripts/benchmark.sh SUITE [options]" >&2
  echo "known suites: ${KNOWN_SUITES}" >&2
  echo "  platform  concurrent runs through gateway + worker: event latency, queue-to-start, throughput" >&2
  echo "            [--runs 50] [--url URL] [--token TOKEN] [--base-url http://127.0.0.1:8000]" >&2
}

if [[ $# -lt 1 ]]; then
  usage
  exit 2
fi

if [[ -x "${ROOT}/.venv/bin/python" ]]; then
  PYTHON="${ROOT}/.venv/bin/python"
else
  PYTHON="python3"
fi

suite="$1"
shift
case "${suite}" in
  platform)
    exec "${PYTHON}" "${ROOT}/scripts/bench_platform.py" "$@"
    ;;
  -h|--help|help)
    usage
    exit 0
    ;;
  *)
    echo "error: unknown benchmark suite '${suite}' (known suites: ${KNOWN_SUITES})" >&2
    usage
    exit 2
    ;;
esac
