"""GET /api/v1/benchmarks: the benchmark results saved by scripts/benchmark.sh, for the dashboard's Benchmarks page.

MiniWoB++ results (miniwob-*.json, written by agent.bench.summarize) and learning-loop results (learning-*.json,
written by sparkpilot.learn) are read from the `benchmark_dir` setting. A file that cannot be read or does not
hold a result is listed with its error, never a 500.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError

from services.gateway.deps import CurrentUser, Settings
from sparkpilot.schemas import BenchHistogram, BenchmarkList, BenchmarkResult, BenchRound, BenchTaskRow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["benchmarks"])

PATTERNS = ("miniwob-*.json", "learning-*.json")
MAX_FILES = 200  # the newest files by modification time
MAX_BYTES = 50 * 1024 * 1024
STAMP = re.compile(r"(\d{8}T\d{6}Z)")


class BadResult(ValueError):
    """A file that is JSON but not a benchmark result."""


def _created(data: dict[str, Any], key: str, path: Path, mtime: float) -> datetime:
    """The result's own time, else the timestamp benchmark.sh puts in the name, else the file's mtime."""
    value = data.get(key)
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
            return at if at.tzinfo else at.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    m = STAMP.search(path.name)
    if m:
        return datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(mtime, tz=timezone.utc)


def _need(data: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise BadResult(f"missing {', '.join(missing)}")


def _task_rows(rows: Any) -> list[BenchTaskRow]:
    if not isinstance(rows, list):
        raise BadResult("'tasks' is not a list")
    return [BenchTaskRow.model_validate(r) for r in rows]


def _miniwob(name: str, data: dict[str, Any], created: datetime) -> BenchmarkResult:
    _need(data, "episodes", "successes", "success_rate", "success_ci95", "tasks")
    hist = data.get("harness_histogram_ms")
    return BenchmarkResult(
        name=name, suite="miniwob", created_at=created, model=data.get("model"), policy=data.get("policy"),
        episodes=data["episodes"], successes=data["successes"], success_rate=data["success_rate"],
        success_ci95=data["success_ci95"], tasks=_task_rows(data["tasks"]),
        harness_p50_ms=data.get("harness_overhead_ms_p50"), harness_p95_ms=data.get("harness_overhead_ms_p95"),
        harness_histogram_ms=BenchHistogram.model_validate(hist) if hist else None)


def _learning(name: str, data: dict[str, Any], created: datetime) -> BenchmarkResult:
    _need(data, "baseline", "rounds")
    base, rounds = data["baseline"], data["rounds"]
    if not isinstance(base, dict) or not isinstance(rounds, list):
        raise BadResult("'baseline' or 'rounds' has the wrong shape")
    rows = [BenchRound(round=0, model=base.get("model"), gate="baseline", episodes=base["episodes"],
                       successes=base["successes"], success_rate=base["success_rate"], ci95=base["ci95"])]
    for r in rounds:
        rows.append(BenchRound(round=r["round"], model=r.get("model"), promoted=r.get("promoted"), gate=r.get("gate"),
                               episodes=r["episodes"], successes=r["successes"], success_rate=r["success_rate"],
                               ci95=r["ci95"]))
    last = rounds[-1] if rounds else base
    return BenchmarkResult(
        name=name, suite="learning", created_at=created, model=last.get("model"), policy="model",
        episodes=last["episodes"], successes=last["successes"], success_rate=last["success_rate"],
        success_ci95=last["ci95"], tasks=_task_rows(last.get("tasks", [])), rounds=rows)


def read_result(path: Path) -> BenchmarkResult:
    """One saved file as the dashboard shows it; any problem becomes the entry's `error`."""
    name = path.name
    try:
        st = path.stat()
        if st.st_size > MAX_BYTES:
            raise BadResult(f"file is larger than {MAX_BYTES // (1024 * 1024)} MB")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise BadResult("not a JSON object")
        suite = data.get("suite")
        if suite == "miniwob":
            return _miniwob(name, data, _created(data, "created_at", path, st.st_mtime))
        if suite == "learning":
            return _learning(name, data, _created(data, "started_at", path, st.st_mtime))
        raise BadResult(f"unknown suite {suite!r}")
    except OSError as exc:
        error = f"unreadable: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        error = f"not UTF-8 text: {exc.reason}"
    except json.JSONDecodeError as exc:
        error = f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except ValidationError as exc:
        first = exc.errors()[0]
        error = f"not a benchmark result: {'.'.join(map(str, first['loc']))}: {first['msg']}"
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:  # BadResult and malformed fields
        error = f"not a benchmark result: {exc if not isinstance(exc, KeyError) else f'missing {exc}'}"
    log.info("benchmark result %s skipped: %s", path, error)
    return BenchmarkResult(name=name, suite=name.split("-", 1)[0], error=error)


def list_results(folder: Path) -> list[BenchmarkResult]:
    """Every saved result in `folder`, newest first (files that could not be read last, by name)."""
    try:
        files = [p for pattern in PATTERNS for p in folder.glob(pattern) if p.is_file()]
        files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError as exc:
        log.warning("benchmark folder %s unreadable: %s", folder, exc)
        return []
    results = [read_result(p) for p in files[:MAX_FILES]]
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(results, key=lambda r: (r.error is None, r.created_at or epoch, r.name), reverse=True)


@router.get("/benchmarks", response_model=BenchmarkList)
def benchmarks(_user: CurrentUser, settings: Settings) -> BenchmarkList:
    """The saved MiniWoB++ and learning results: success with its Wilson 95% interval, per task, harness overhead."""
    folder = settings.benchmark_dir
    return BenchmarkList(directory=str(folder), results=list_results(folder))
