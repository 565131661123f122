"""REST endpoints for document collections: create, upload documents (converted, chunked, embedded), search."""

from __future__ import annotations

import shutil
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request, Response

from services.gateway.deps import DB, CurrentUser, Settings
from sparkpilot import documents, run_files
from sparkpilot.db.models import Collection, new_id
from sparkpilot.db.session import session_scope
from sparkpilot.team_schemas import CollectionCreate, CollectionPublic, DocumentPublic, SearchHit

router = APIRouter(prefix="/api/v1/collections", tags=["collections"])


def _public(db: DB, row: Collection) -> CollectionPublic:
    return CollectionPublic(id=row.id, name=row.name, description=row.description, created_at=row.created_at,
                            documents=[DocumentPublic.model_validate(d) for d in documents.documents_of(db, row.id)])


@router.post("", status_code=201, response_model=CollectionPublic)
def create_collection(body: CollectionCreate, db: DB, user: CurrentUser) -> CollectionPublic:
    """A new, empty collection; 409 `collection_exists` for a name you already use."""
    row = documents.create_collection(db, user, body.name, body.description)
    db.commit()
    return _public(db, row)


@router.get("", response_model=list[CollectionPublic])
def list_collections(db: DB, user: CurrentUser) -> list[CollectionPublic]:
    """Your collections with their documents."""
    return [_public(db, c) for c in documents.list_collections(db, user)]


@router.get("/{collection_id}", response_model=CollectionPublic)
def get_collection(collection_id: str, db: DB, user: CurrentUser) -> CollectionPublic:
    """One collection with its documents (status, passages, and why a failed one failed)."""
    return _public(db, documents.get_collection(db, collection_id, user))


@router.delete("/{collection_id}", status_code=204)
def delete_collection(collection_id: str, db: DB, user: CurrentUser, settings: Settings) -> Response:
    """Delete a collection, its documents and passages."""
    documents.delete_collection(db, documents.get_collection(db, collection_id, user))
    db.commit()
    shutil.rmtree(settings.workspace_dir / "collections" / collection_id, ignore_errors=True)
    return Response(status_code=204)


@router.post("/{collection_id}/documents", status_code=201, response_model=DocumentPublic)
async def upload_document(collection_id: str, request: Request, db: DB, user: CurrentUser, settings: Settings,
                          name: Annotated[str, Query(min_length=1, max_length=128)]) -> DocumentPublic:
    """Upload the body as document `name` (PDF, DOCX, HTML, Markdown, text): 413 past the cap, 422 for other types.

    A file that cannot be converted is stored as `failed` with the reason; the collection stays usable.
    """
    collection = documents.get_collection(db, collection_id, user)
    documents.check_type(name)
    db.close()
    folder = settings.workspace_dir / "collections" / collection_id
    doc_id = new_id()
    stored = f"{doc_id}-{run_files.safe_name(name)}"
    await run_files.save_upload(folder, stored, request.stream(), settings.document_max_bytes,
                                "SPARKPILOT_DOCUMENT_MAX_BYTES")

    def ingest() -> DocumentPublic:
        with session_scope() as s:
            return DocumentPublic.model_validate(documents.add_document(s, collection, name, folder / stored, doc_id))

    return await anyio.to_thread.run_sync(ingest)


@router.delete("/{collection_id}/documents/{document_id}", status_code=204)
def delete_document(collection_id: str, document_id: str, db: DB, user: CurrentUser, settings: Settings) -> Response:
    """Remove one document, its passages and its file."""
    documents.delete_document(db, documents.get_collection(db, collection_id, user), document_id)
    db.commit()
    for path in (settings.workspace_dir / "collections" / collection_id).glob(f"{document_id}-*"):
        path.unlink(missing_ok=True)
    return Response(status_code=204)


@router.get("/{collection_id}/search", response_model=list[SearchHit])
def search(collection_id: str, db: DB, user: CurrentUser, q: Annotated[str, Query(min_length=1, max_length=2000)],
           k: Annotated[int, Query(ge=1, le=50)] = 5) -> list[SearchHit]:
    """The passages that best match `q` (hybrid BM25 + embeddings), best first, with their source and position."""
    documents.get_collection(db, collection_id, user)
    return [SearchHit.model_validate(h) for h in documents.search(db, [collection_id], q, k)]
