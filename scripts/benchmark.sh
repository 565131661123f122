#!/usr/bin/env bash
# Sparkpilot benchmarks: scripts/benchmark.sh SUITE [options]   (scripts/benchmark.sh SUITE --help for options)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KNOWN_SUITES="platform inference miniwob learning retrieval"

usage() {
  echo "usage: scripts/benchmark.sh SUITE [options]" >&2
  echo "known suites: ${KNOWN_SUITES}" >&2
  echo "  platform  concurrent runs through gateway + worker: event latency, queue-to-start, throughput" >&2
  echo "            [--runs 50] [--url URL] [--token TOKEN] [--base-url http://127.0.0.1:8000] [--json PATH]" >&2
  echo "  platform --matrix  the same on SQLite and PostgreSQL with 1 and 2 worker processes, each started here" >&2
  echo "            [--runs 50,200] [--dbs sqlite,postgresql] [--workers 1,2] [--postgres-url URL]" >&2
  echo "  inference tokens/s at 1 and 8 concurrent requests, TTFT, gateway overhead vs direct vLLM" >&2
  echo "            [--requests 8] [--max-tokens 64] [--token TOKEN] [--base-url URL]" >&2
  echo "  miniwob   MiniWoB++ episodes through the full stack (sparkpilot bench miniwob --through-stack)" >&2
  echo "            [--tasks a,b] [--seeds 0,1] [--policy model|replay] [--max-steps 5] [--json PATH]" >&2
  echo "  learning  the self-improving loop (sparkpilot learn): baseline → collect → train → gate, per round" >&2
  echo "            [--tasks a,b] [--rounds 2] [--episodes-per-task 10] [--eval-seeds 0,1,2,3,4] [--name learner]" >&2
  echo "  retrieval document search: recall@5 on a labelled set (alone and among 10k passages), latency, ingest rate" >&2
  echo "            [--distractors 10000] [--k 5] [--queries 50] [--json PATH]" >&2
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
    if [[ "${1:-}" == "--matrix" ]]; then  # its own gateway and workers per configuration
      shift
      exec "${PYTHON}" "${ROOT}/scripts/bench_platform_matrix.py" "$@"
    fi
    exec "${PYTHON}" "${ROOT}/scripts/bench_platform.py" "$@"
    ;;
  inference)
    exec "${PYTHON}" "${ROOT}/scripts/bench_inference.py" "$@"
    ;;
  retrieval)
    exec "${PYTHON}" "${ROOT}/scripts/bench_retrieval.py" "$@"
    ;;
  miniwob)
    exec "${ROOT}/.venv/bin/sparkpilot" bench miniwob --through-stack \
      --json "${ROOT}/benchmark-results/miniwob-$(date -u +%Y%m%dT%H%M%SZ).json" "$@"
    ;;
  learning)
    exec "${ROOT}/.venv/bin/sparkpilot" learn \
      --json "${ROOT}/benchmark-results/learning-$(date -u +%Y%m%dT%H%M%SZ).json" "$@"
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
