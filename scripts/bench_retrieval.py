"""Retrieval benchmark: recall@k on a labelled set, alone and hidden among ~10k distractor passages,
for hybrid, BM25-only and dense-only search; ingestion rate and search latency at 10k passages.

Runs in process on a throwaway SQLite database (the product's own code: sparkpilot/documents.py).
The distractors are real English text that ships with Python: the standard library's docstrings.
Prints a table and saves JSON under benchmark-results/.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import statistics
import sys
import sysconfig
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import logging  # noqa: E402

from sparkpilot import documents  # noqa: E402
from sparkpilot.db.migrate import upgrade  # noqa: E402
from sparkpilot.db.models import Chunk, Document  # noqa: E402
from sparkpilot.db.session import session_scope  # noqa: E402
from sparkpilot.auth import get_or_create_user  # noqa: E402

MODES = ("hybrid", "bm25", "dense")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of k successes in n."""
    if n == 0:
        return 0.0, 0.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(centre - half, 3), round(centre + half, 3)


def _docstrings(path: Path) -> list[str]:
    """The docstrings of a Python source file (module, classes, functions), read without importing it."""
    try:
        tree = ast.parse(path.read_text(errors="replace"))
    except (SyntaxError, ValueError, OSError):
        return []
    nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    return [d for d in (ast.get_docstring(n) for n in nodes) if d]


def distractor_passages(count: int) -> list[str]:
    """`count` distinct passages of real English text that ships with Python: the language reference's
    topics (pydoc_data), then the docstrings of the standard library's and installed packages' sources."""
    from pydoc_data.topics import topics

    seen: set[str] = set()
    out: list[str] = []

    def take(text: str) -> bool:
        for chunk in documents.chunk_text(text):
            if len(chunk) > 80 and chunk not in seen:
                seen.add(chunk)
                out.append(chunk)
        return len(out) >= count

    for text in topics.values():
        if take(text):
            return out[:count]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for folder in (stdlib, Path(sysconfig.get_paths()["purelib"])):
        for path in sorted(folder.rglob("*.py")):
            if "site-packages" in path.parts and folder == stdlib:
                continue
            for text in _docstrings(path):
                if take(text):
                    return out[:count]
    raise SystemExit(f"only {len(out)} distinct passages found on this Python; ask for fewer --distractors")


def recall(session, collection_ids: list[str], questions: list[dict], k: int) -> dict:  # noqa: ANN001
    """recall@k and MRR per mode."""
    result = {}
    for mode in MODES:
        hits, rr = 0, 0.0
        for q in questions:
            found = documents.search(session, collection_ids, q["q"], k, mode)  # type: ignore[arg-type]
            ranks = [i for i, h in enumerate(found) if h.filename == q["doc"] and q["answer"] in h.text]
            hits += bool(ranks)
            rr += 1 / (ranks[0] + 1) if ranks else 0.0
        result[mode] = {"recall": round(hits / len(questions), 3), "hits": hits, "n": len(questions),
                        "ci95": wilson(hits, len(questions)), "mrr": round(rr / len(questions), 3)}
    return result


def main() -> int:
    """Run the benchmark and print/save its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--distractors", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--queries", type=int, default=50, help="timed searches at full size")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # some stdlib imports switch on DEBUG logging
    data = json.loads((ROOT / "scripts" / "data" / "retrieval_set.json").read_text())
    tmp = Path(tempfile.mkdtemp(prefix="sparkpilot-retrieval-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    report: dict = {"k": args.k, "questions": len(data["questions"]), "documents": len(data["documents"])}
    with session_scope(url) as s:
        user = get_or_create_user(s, "bench")
        labelled = documents.create_collection(s, user, "labelled", "")
        for name, text in data["documents"].items():
            path = tmp / name
            path.write_text(text)
            documents.add_document(s, labelled, name, path)
        s.commit()
        report["labelled_chunks"] = s.query(Chunk).filter(Chunk.collection_id == labelled.id).count()
        report["alone"] = recall(s, [labelled.id], data["questions"], args.k)

        print(f"building {args.distractors} distractor passages from the standard library's docstrings…", flush=True)
        passages = distractor_passages(args.distractors)
        noise = documents.create_collection(s, user, "distractors", "")
        doc = Document(collection_id=noise.id, filename="stdlib-docstrings.txt", size_bytes=0, status="ready")
        s.add(doc)
        s.flush()
        t0 = time.perf_counter()
        for start in range(0, len(passages), 1000):
            batch = passages[start:start + 1000]
            vectors = documents.embed(batch)
            s.add_all(Chunk(collection_id=noise.id, document_id=doc.id, position=start + i, text=t,
                            embedding=vectors[i].tobytes()) for i, t in enumerate(batch))
            s.flush()
        s.commit()
        embed_s = time.perf_counter() - t0
        report["ingest"] = {"chunks": len(passages), "seconds": round(embed_s, 2),
                            "chunks_per_s": round(len(passages) / embed_s, 1)}
        both = [labelled.id, noise.id]
        t0 = time.perf_counter()
        documents.search(s, both, "warm up the index", args.k)
        report["index_build_s"] = round(time.perf_counter() - t0, 3)
        report["with_distractors"] = recall(s, both, data["questions"], args.k)
        report["total_chunks"] = report["labelled_chunks"] + len(passages)
        timings = []
        for i in range(args.queries):
            q = data["questions"][i % len(data["questions"])]["q"]
            t0 = time.perf_counter()
            documents.search(s, both, q, args.k)
            timings.append((time.perf_counter() - t0) * 1000)
        timings.sort()
        report["search_ms"] = {"p50": round(statistics.median(timings), 2),
                               "p95": round(timings[int(0.95 * (len(timings) - 1))], 2), "n": len(timings)}

    print(f"\nretrieval, recall@{args.k} on {report['questions']} labelled questions (95% Wilson CI)")
    print(f"{'mode':8} {'alone (' + str(report['labelled_chunks']) + ' passages)':>28} "
          f"{'among ' + str(report['total_chunks']) + ' passages':>30}   MRR")
    for mode in MODES:
        a, w = report["alone"][mode], report["with_distractors"][mode]
        print(f"{mode:8} {a['hits']:>3}/{a['n']} = {a['recall']:.2f} {str(tuple(a['ci95'])):>14} "
              f"{w['hits']:>6}/{w['n']} = {w['recall']:.2f} {str(tuple(w['ci95'])):>14}   {w['mrr']:.2f}")
    print(f"\ningest: {report['ingest']['chunks']} passages embedded and stored in {report['ingest']['seconds']} s "
          f"({report['ingest']['chunks_per_s']}/s)")
    print(f"first search (index build) at {report['total_chunks']} passages: {report['index_build_s'] * 1000:.0f} ms; "
          f"then p50 {report['search_ms']['p50']} ms, p95 {report['search_ms']['p95']} ms over {args.queries} searches")
    out = args.json or ROOT / "benchmark-results" / f"retrieval-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
