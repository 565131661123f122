"""Inference benchmark: tokens/s at 1 and 8 concurrent requests, time to first token, and the
overhead of the gateway's direct endpoint against calling vLLM directly (one run, same prompts).

    scripts/benchmark.sh inference [--requests 8] [--max-tokens 64] [--token T] [--base-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.bench_platform import env_file_token  # noqa: E402
from sparkpilot.stats import pct  # noqa: E402
from sparkpilot.llm_client import LLMClient  # noqa: E402
from sparkpilot.settings import get_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Describe, in three sentences, how a web browser loads a page."


async def direct_round(url: str, model: str, concurrency: int, max_tokens: int) -> dict:
    """`concurrency` requests at once straight to vLLM through the policy client."""
    async with LLMClient(url, model, timeout_s=600) as client:
        t0 = time.perf_counter()
        outs = await asyncio.gather(*(client.complete([{"role": "user", "content": PROMPT}], max_tokens=max_tokens,
                                                      temperature=0.0) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    tokens = sum(o.metrics.completion_tokens or 0 for o in outs)
    return {
        "concurrency": concurrency,
        "completion_tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "ttft_ms_p50": pct([o.metrics.ttft_ms for o in outs if o.metrics.ttft_ms], 50),
        "latency_ms_p50": pct([o.metrics.latency_ms for o in outs], 50),
    }


async def overhead(url: str, model: str, base_url: str, token: str, n: int, max_tokens: int) -> dict:
    """Mean latency of n sequential identical requests via the gateway and directly; their ratio."""
    direct, gateway = [], []
    async with LLMClient(url, model, timeout_s=600) as client, httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=600
    ) as api:
        for _ in range(n):  # interleaved, so drift on the machine hits both sides alike
            t0 = time.perf_counter()
            await client.complete([{"role": "user", "content": PROMPT}], max_tokens=max_tokens)
            direct.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            resp = await api.post("/api/v1/inference", json={"prompt": PROMPT, "max_tokens": max_tokens})
            resp.raise_for_status()
            gateway.append((time.perf_counter() - t0) * 1000)
    d, g = sum(direct) / n, sum(gateway) / n
    return {"requests": n, "direct_ms_mean": round(d, 2), "gateway_ms_mean": round(g, 2),
            "overhead_ms": round(g - d, 2), "gateway_over_direct_ratio": round(g / d, 4)}


async def main(args: argparse.Namespace) -> int:
    """Run the rounds, print the table, save the JSON."""
    settings = get_settings()
    url, model = args.inference_url or settings.inference_url, settings.inference_model
    token = args.token or os.environ.get("SPARKPILOT_TOKEN") or env_file_token()
    try:
        httpx.get(url.removesuffix("/v1") + "/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        print(f"error: model server not reachable at {url} ({exc}); start the stack with `make up`", file=sys.stderr)
        return 1
    print(f"inference benchmark: {model} at {url}", flush=True)
    await direct_round(url, model, 1, 8)  # warm-up
    rounds = []
    for c in (1, args.requests):
        print(f"  {c} concurrent request(s)…", flush=True)
        rounds.append(await direct_round(url, model, c, args.max_tokens))
    over = None
    if token:
        print("  gateway overhead…", flush=True)
        over = await overhead(url, model, args.base_url, token, args.overhead_requests, args.max_tokens)
    result = {
        "suite": "inference", "model": model, "inference_url": url, "max_tokens": args.max_tokens,
        "rounds": rounds, "gateway_overhead": over, "started_at": datetime.now(timezone.utc).isoformat(),
        "host": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    for r in rounds:
        print(f"  concurrency {r['concurrency']:>2}: {r['tokens_per_s']:8.2f} tok/s   ttft p50 {r['ttft_ms_p50']} ms"
              f"   latency p50 {r['latency_ms_p50']} ms")
    if over:
        print(f"  gateway /api/v1/inference vs direct: {over['gateway_ms_mean']} vs {over['direct_ms_mean']} ms "
              f"(ratio {over['gateway_over_direct_ratio']}, +{over['overhead_ms']} ms)")
    else:
        print("  gateway overhead skipped: no token (--token, SPARKPILOT_TOKEN or .env)")
    out = ROOT / "benchmark-results" / f"inference-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"results written to {out}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=8, help="concurrent requests in the second round (default 8)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--overhead-requests", type=int, default=5)
    p.add_argument("--token")
    p.add_argument("--base-url", default=os.environ.get("SPARKPILOT_BASE_URL", "http://127.0.0.1:8000"))
    p.add_argument("--inference-url", help="default: SPARKPILOT_INFERENCE_URL")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
