"""Document collections for retrieval: convert, chunk, embed, store, and search (hybrid BM25 + dense).

Files are converted to text with markitdown (PDF, DOCX, HTML) or read as they are (Markdown, text),
split into overlapping passages, and embedded locally with WordLlama, whose weights ship inside its
PyPI package (nothing is downloaded). Passages and their embeddings live in the database; a search
ranks the query's collections by BM25 (bm25s) and by cosine similarity, and fuses the two rankings
(reciprocal rank fusion). The BM25 index and the embedding matrix are built from the database on
first use and cached per process until the collections change.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from sparkpilot.convert import to_markdown
from sparkpilot.db.models import Chunk, Collection, Document, User
from sparkpilot.errors import Conflict, InvalidInput, NotFound

SUPPORTED = {".pdf": "PDF", ".docx": "Word", ".html": "HTML", ".htm": "HTML", ".md": "Markdown",
             ".markdown": "Markdown", ".txt": "text"}
CHUNK_CHARS = 800
OVERLAP_CHARS = 120
RRF_K = 60  # reciprocal rank fusion's damping constant (the usual value)
CANDIDATES = 50  # per ranking, before fusion
BM25_WEIGHT = 0.5  # BM25 counts half as much as the embeddings in the fusion (see README: retrieval benchmark)
SearchMode = Literal["hybrid", "bm25", "dense"]


class UnsupportedType(InvalidInput):
    """A file type retrieval cannot read."""

    code = "unsupported_type"


@dataclass
class Hit:
    """One ranked passage."""

    chunk_id: int
    document_id: str
    filename: str
    position: int
    text: str
    score: float


# --- collections -------------------------------------------------------------------------------

def create_collection(session: Session, user: User, name: str, description: str) -> Collection:
    """A new, empty collection; 409 for a name the user already has."""
    if session.scalar(select(Collection).where(Collection.user_id == user.id, Collection.name == name)) is not None:
        raise Conflict(f"you already have a collection named {name!r}", code="collection_exists")
    row = Collection(user_id=user.id, name=name, description=description)
    session.add(row)
    session.flush()
    return row


def get_collection(session: Session, collection_id: str, user: User) -> Collection:
    """A collection of this user; 404 otherwise."""
    row = session.get(Collection, collection_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"collection {collection_id!r} not found")
    return row


def list_collections(session: Session, user: User) -> list[Collection]:
    """The user's collections by name."""
    return list(session.scalars(select(Collection).where(Collection.user_id == user.id).order_by(Collection.name)))


def documents_of(session: Session, collection_id: str) -> list[Document]:
    """A collection's documents, oldest first."""
    return list(session.scalars(select(Document).where(Document.collection_id == collection_id)
                                .order_by(Document.created_at, Document.id)))


def delete_collection(session: Session, collection: Collection) -> None:
    """Remove a collection with its documents and passages."""
    session.execute(delete(Chunk).where(Chunk.collection_id == collection.id))
    session.execute(delete(Document).where(Document.collection_id == collection.id))
    session.delete(collection)


def delete_document(session: Session, collection: Collection, document_id: str) -> None:
    """Remove one document and its passages."""
    doc = session.get(Document, document_id)
    if doc is None or doc.collection_id != collection.id:
        raise NotFound(f"collection {collection.id} has no document {document_id!r}", code="document_not_found")
    session.execute(delete(Chunk).where(Chunk.document_id == doc.id))
    session.delete(doc)


def check_collections(session: Session, user: User, ids: list[str]) -> None:
    """422 `unknown_collection` for an id that is not one of the user's collections."""
    for cid in ids:
        row = session.get(Collection, cid)
        if row is None or row.user_id != user.id:
            raise InvalidInput(f"unknown document collection {cid!r}: create it with POST /api/v1/collections",
                               code="unknown_collection")


# --- ingestion ---------------------------------------------------------------------------------

def check_type(filename: str) -> str:
    """The file's kind, or 422 naming the type that is not supported."""
    ext = Path(filename).suffix.lower()
    if ext not in SUPPORTED:
        raise UnsupportedType(f"unsupported file type {ext or '(none)'!r} ({filename}); supported: "
                              + ", ".join(sorted(SUPPORTED)))
    return SUPPORTED[ext]


def to_text(path: Path, name: str | None = None) -> str:
    """The file's text (Markdown for converted formats); ValueError with the reason (naming it `name`) if unreadable."""
    if path.suffix.lower() in (".md", ".markdown", ".txt"):
        return path.read_text(errors="replace")
    return to_markdown(path, name or path.name)  # in a child process with limits (sparkpilot/convert.py)


def chunk_text(text: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    """Passages of at most `size` characters along paragraph, then sentence, then word breaks, overlapping by `overlap`."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        if len(para) <= size:
            pieces.append(para)
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", para):
            while len(sentence) > size:
                cut = sentence.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                pieces.append(sentence[:cut])
                sentence = sentence[cut:].strip()
            if sentence:
                pieces.append(sentence)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > size:
            chunks.append(current)
            tail = current[-overlap:] if overlap else ""
            tail = tail[tail.find(" ") + 1:] if " " in tail else tail
            current = (tail + " " + piece).strip() if len(tail) + 1 + len(piece) <= size else piece
        else:
            current = f"{current} {piece}".strip()
    if current:
        chunks.append(current)
    return chunks


@lru_cache(maxsize=1)
def embedder() -> Any:
    """The WordLlama model from the weights inside its package (never downloads)."""
    import wordllama

    # wordllama looks for its bundled tokenizer under <cache_dir>/tokenizers: its own package folder.
    return wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    vectors = np.asarray(embedder().embed(texts), dtype=np.float32).reshape(len(texts), -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def add_document(session: Session, collection: Collection, filename: str, path: Path, doc_id: str | None = None) -> Document:
    """Convert, chunk and embed one stored file; a file that cannot be read is kept as failed with the reason."""
    doc = Document(collection_id=collection.id, filename=filename, size_bytes=path.stat().st_size, status="ready",
                   **({"id": doc_id} if doc_id else {}))
    session.add(doc)
    session.flush()
    try:
        chunks = chunk_text(to_text(path, filename))
        if not chunks:
            raise ValueError(f"{filename} has no text to index")
    except (ValueError, OSError) as exc:
        doc.status, doc.reason = "failed", str(exc)
        return doc
    vectors = embed(chunks)
    session.add_all(Chunk(collection_id=collection.id, document_id=doc.id, position=i, text=t,
                          embedding=vectors[i].tobytes()) for i, t in enumerate(chunks))
    doc.chunks = len(chunks)
    session.flush()
    return doc


# --- search ------------------------------------------------------------------------------------

@dataclass
class _Index:
    stamp: tuple[int, int]
    ids: list[int]
    doc_ids: list[str]
    positions: list[int]
    texts: list[str]
    matrix: np.ndarray
    bm25: Any


_CACHE: OrderedDict[tuple[str, ...], _Index] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def _tokenize(texts: list[str]) -> Any:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", show_progress=False)


def _index(session: Session, collection_ids: tuple[str, ...]) -> _Index | None:
    """The (cached) index over these collections' passages; rebuilt when a passage was added or removed."""
    count, last = session.execute(select(func.count(), func.coalesce(func.max(Chunk.id), 0))
                                  .where(Chunk.collection_id.in_(collection_ids))).one()
    if count == 0:
        return None
    with _CACHE_LOCK:
        cached = _CACHE.get(collection_ids)
        if cached is not None and cached.stamp == (count, last):
            _CACHE.move_to_end(collection_ids)
            return cached
    import bm25s

    rows = session.execute(select(Chunk.id, Chunk.document_id, Chunk.position, Chunk.text, Chunk.embedding)
                           .where(Chunk.collection_id.in_(collection_ids)).order_by(Chunk.id)).all()
    bm25 = bm25s.BM25()
    bm25.index(_tokenize([r.text for r in rows]), show_progress=False)
    built = _Index((count, last), [r.id for r in rows], [r.document_id for r in rows], [r.position for r in rows],
                   [r.text for r in rows], np.vstack([np.frombuffer(r.embedding, dtype=np.float32) for r in rows]), bm25)
    with _CACHE_LOCK:
        _CACHE[collection_ids] = built
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return built


def _bm25_ranking(index: _Index, query: str, n: int) -> list[int]:
    tokens = _tokenize([query])
    if not any(len(ids) for ids in tokens.ids):
        return []
    docs, scores = index.bm25.retrieve(tokens, k=min(n, len(index.ids)), show_progress=False)
    return [int(d) for d, s in zip(docs[0], scores[0]) if s > 0]


def _dense_ranking(index: _Index, query: str, n: int) -> list[int]:
    sims = index.matrix @ embed([query])[0]
    top = np.argsort(-sims)[:n]
    return [int(i) for i in top]


def search(session: Session, collection_ids: list[str], query: str, k: int = 5, mode: SearchMode = "hybrid") -> list[Hit]:
    """The `k` passages of these collections that best match `query`, best first."""
    index = _index(session, tuple(sorted(set(collection_ids))))
    if index is None or not query.strip():
        return []
    rankings = []
    if mode in ("hybrid", "bm25"):
        rankings.append((BM25_WEIGHT, _bm25_ranking(index, query, CANDIDATES)))
    if mode in ("hybrid", "dense"):
        rankings.append((1.0, _dense_ranking(index, query, CANDIDATES)))
    fused: dict[int, float] = {}
    for weight, ranking in rankings:
        for rank, i in enumerate(ranking):
            fused[i] = fused.get(i, 0.0) + weight / (RRF_K + rank + 1)
    best = sorted(fused, key=lambda i: -fused[i])[:k]
    names = dict(session.execute(select(Document.id, Document.filename)
                                 .where(Document.id.in_({index.doc_ids[i] for i in best}))).all())
    return [Hit(index.ids[i], index.doc_ids[i], names.get(index.doc_ids[i], "?"), index.positions[i], index.texts[i],
                round(fused[i], 6)) for i in best]


def passages_for_prompt(hits: list[Hit], max_chars: int) -> str:
    """Hits as numbered passages with their source, within `max_chars`."""
    lines, used = [], 0
    for n, hit in enumerate(hits, 1):
        line = f"[{n}] {hit.filename} (passage {hit.position + 1}): {hit.text}"
        if used + len(line) > max_chars:
            line = line[:max(0, max_chars - used)]
        if not line:
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)
