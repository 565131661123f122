"""The retrieval core (sparkpilot/documents.py) on SQLite and on PostgreSQL: ingest, search, the cached
index following changes, collections kept apart, failures recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkpilot import documents
from sparkpilot.auth import get_or_create_user
from sparkpilot.db.models import Chunk, Document
from sparkpilot.errors import Conflict, InvalidInput, NotFound
from tests.docs_fixtures import make_pdf


def _add(db, collection, tmp_path: Path, name: str, body: bytes):  # noqa: ANN001, ANN202
    path = tmp_path / name
    path.write_bytes(body)
    doc = documents.add_document(db, collection, name, path)
    db.commit()
    return doc


def test_ingest_search_and_the_index_following_changes(db, tmp_path: Path) -> None:  # noqa: ANN001
    ada, bob = get_or_create_user(db, "ada"), get_or_create_user(db, "bob")
    handbook = documents.create_collection(db, ada, "handbook", "")
    other = documents.create_collection(db, bob, "handbook", "")  # names are per user
    with pytest.raises(Conflict):
        documents.create_collection(db, ada, "handbook", "")
    long_text = "\n\n".join(f"Section {i}. " + "Filler words about nothing much. " * 20 for i in range(6))
    doc = _add(db, handbook, tmp_path, "long.md", (long_text + "\n\nThe vault code is 7731.").encode())
    assert doc.status == "ready" and doc.chunks > 1
    rows = db.query(Chunk).filter(Chunk.document_id == doc.id).order_by(Chunk.position).all()
    assert [r.position for r in rows] == list(range(doc.chunks)) and len(rows[0].embedding) == 256 * 4
    _add(db, other, tmp_path, "bob.md", b"The vault code is 1234 for Bob only.")

    hits = documents.search(db, [handbook.id], "what is the vault code", 3)
    assert hits[0].filename == "long.md" and "7731" in hits[0].text and hits[0].position == doc.chunks - 1
    assert all("1234" not in h.text for h in hits)  # another collection is never searched
    assert [h.chunk_id for h in documents.search(db, [handbook.id], "vault code", 3, "bm25")][0] == hits[0].chunk_id

    invoice = _add(db, handbook, tmp_path, "invoice.pdf", make_pdf(["Invoice 88", "The amount due is 512 euros."]))
    assert documents.search(db, [handbook.id], "amount due on the invoice", 1)[0].filename == "invoice.pdf"
    documents.delete_document(db, handbook, invoice.id)
    db.commit()
    assert all(h.filename != "invoice.pdf" for h in documents.search(db, [handbook.id], "amount due on the invoice", 5))
    with pytest.raises(NotFound):
        documents.delete_document(db, handbook, invoice.id)

    documents.delete_collection(db, handbook)
    db.commit()
    assert documents.search(db, [handbook.id], "vault", 5) == []
    assert db.query(Document).filter(Document.collection_id == handbook.id).count() == 0
    with pytest.raises(InvalidInput, match="unknown document collection"):
        documents.check_collections(db, ada, [handbook.id])
    with pytest.raises(InvalidInput):
        documents.check_collections(db, ada, [other.id])  # Bob's


def test_unreadable_files_are_failed_documents_with_reasons(db, tmp_path: Path) -> None:  # noqa: ANN001
    col = documents.create_collection(db, get_or_create_user(db, "cy"), "mixed", "")
    broken = _add(db, col, tmp_path, "broken.pdf", b"%PDF-1.4 nothing else")
    assert broken.status == "failed" and broken.reason.startswith("could not convert broken.pdf: PDFSyntaxError")
    docx = _add(db, col, tmp_path, "fake.docx", b"not a zip at all")
    assert docx.status == "failed" and "could not convert fake.docx" in docx.reason
    assert db.query(Chunk).filter(Chunk.collection_id == col.id).count() == 0
    assert documents.search(db, [col.id], "anything", 5) == []
    with pytest.raises(documents.UnsupportedType, match="'.exe'"):
        documents.check_type("setup.exe")
