"""Document collections on the real gateway and worker: upload real PDF, DOCX, HTML, Markdown and text,
search them, refuse what cannot be read, and ground an agent's run in them (its prompt and its
search_documents action). The run's answers are scripted; the retrieval is real.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.docs_fixtures import make_docx, make_pdf
from tests.helpers import wait_terminal

FILES = {
    "invoice.pdf": make_pdf(["Invoice 1042 from Acme Corp", "Total due: 318 euros, payable by 30 June."]),
    "policy.docx": make_docx(["Refund policy", "Refunds are paid to the original card within 14 days of the return."]),
    "office.html": b"<html><body><h1>Offices</h1><p>Our Lisbon office opens at 9:00 on weekdays.</p></body></html>",
    "notes.md": b"# Shipping\n\nParcels to Norway travel by ferry from Hirtshals and take five days.\n",
    "faq.txt": b"Support answers e-mail within one business day.\n",
}


def _collection(api: httpx.Client, name: str | None = None) -> dict:
    resp = api.post("/api/v1/collections", json={"name": name or f"docs {uuid.uuid4().hex[:6]}"})
    assert resp.status_code == 201, resp.text
    return resp.json()


def _upload(api: httpx.Client, cid: str, name: str, body: bytes) -> httpx.Response:
    return api.post(f"/api/v1/collections/{cid}/documents", params={"name": name}, content=body)


def test_upload_convert_search_and_delete(api: httpx.Client, user_api: httpx.Client) -> None:
    col = _collection(api)
    for name, body in FILES.items():
        resp = _upload(api, col["id"], name, body)
        assert resp.status_code == 201, resp.text
        doc = resp.json()
        assert (doc["status"], doc["filename"], doc["size_bytes"]) == ("ready", name, len(body)) and doc["chunks"] >= 1
    for query, source, words in (("when are refunds paid", "policy.docx", "14 days"),
                                 ("how much is due on invoice 1042", "invoice.pdf", "318 euros"),
                                 ("what time does the Lisbon office open", "office.html", "9:00"),
                                 ("ferry to Norway", "notes.md", "Hirtshals")):
        hits = api.get(f"/api/v1/collections/{col['id']}/search", params={"q": query}).json()
        assert hits and hits[0]["filename"] == source and words in hits[0]["text"], (query, hits[:2])
        assert hits[0]["position"] == 0 and hits[0]["score"] >= hits[-1]["score"]
    assert len(api.get(f"/api/v1/collections/{col['id']}/search", params={"q": "support", "k": 2}).json()) == 2

    listed = api.get(f"/api/v1/collections/{col['id']}").json()
    assert sorted(d["filename"] for d in listed["documents"]) == sorted(FILES)
    assert user_api.get(f"/api/v1/collections/{col['id']}").status_code == 404  # another user's
    assert user_api.get(f"/api/v1/collections/{col['id']}/search", params={"q": "x"}).status_code == 404
    dup = api.post("/api/v1/collections", json={"name": col["name"]})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "collection_exists"

    policy_doc = next(d for d in listed["documents"] if d["filename"] == "policy.docx")
    assert api.delete(f"/api/v1/collections/{col['id']}/documents/{policy_doc['id']}").status_code == 204
    hits = api.get(f"/api/v1/collections/{col['id']}/search", params={"q": "when are refunds paid"}).json()
    assert all(h["filename"] != "policy.docx" for h in hits)  # the index follows the change
    assert api.delete(f"/api/v1/collections/{col['id']}").status_code == 204
    assert api.get(f"/api/v1/collections/{col['id']}").status_code == 404


def test_bad_documents_get_clear_errors_and_the_collection_stays_usable(api: httpx.Client) -> None:
    col = _collection(api)
    assert _upload(api, col["id"], "faq.txt", FILES["faq.txt"]).status_code == 201
    resp = _upload(api, col["id"], "slides.pptx", b"PK\x03\x04")
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "unsupported_type" and ".pptx" in resp.text
    big = _upload(api, col["id"], "big.txt", b"x" * (1024 * 1024 + 1))
    assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"
    chunked = api.post(f"/api/v1/collections/{col['id']}/documents", params={"name": "big.txt"},
                       content=iter([b"y" * 512 * 1024] * 3))
    assert chunked.status_code == 413
    broken = _upload(api, col["id"], "broken.pdf", b"%PDF-1.4 this is not really a PDF")
    assert broken.status_code == 201
    assert broken.json()["status"] == "failed" and "could not convert broken.pdf" in broken.json()["reason"]
    empty = _upload(api, col["id"], "empty.md", b"   \n")
    assert empty.json()["status"] == "failed" and "no text" in empty.json()["reason"]
    for bad in ("../x.txt", ".env.txt"):
        assert _upload(api, col["id"], bad, b"x").status_code == 422
    docs = api.get(f"/api/v1/collections/{col['id']}").json()["documents"]
    assert [(d["filename"], d["status"]) for d in docs] == [("faq.txt", "ready"), ("broken.pdf", "failed"),
                                                            ("empty.md", "failed")]
    hits = api.get(f"/api/v1/collections/{col['id']}/search", params={"q": "e-mail support"}).json()
    assert hits[0]["filename"] == "faq.txt"  # still searchable
    assert api.get(f"/api/v1/collections/{col['id']}/search").status_code == 422  # q is required
    assert api.post("/api/v1/collections", json={"name": "../bad"}).status_code == 422
    assert _upload(api, "nope", "a.txt", b"x").status_code == 404


def test_a_document_grounded_run(api: httpx.Client, pages) -> None:  # noqa: ANN001
    col = _collection(api)
    for name in ("policy.docx", "notes.md", "faq.txt"):
        assert _upload(api, col["id"], name, FILES[name]).json()["status"] == "ready"
    bad = api.post("/api/v1/agents", json={"name": f"x {uuid.uuid4().hex[:6]}", "documents": ["no-such-collection"]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_collection"
    agent = api.post("/api/v1/agents", json={"name": f"support {uuid.uuid4().hex[:6]}", "documents": [col["id"]]}).json()
    actions = [{"name": "search_documents", "query": "ferry Norway"}, {"name": "finish", "answer": "within 14 days"}]
    resp = api.post(f"/api/v1/agents/{agent['id']}/runs", json={
        "task": "How many days until a refund is paid?", "start_url": pages.url + "/index.html",
        "policy": "replay", "actions": actions})
    assert resp.status_code == 201, resp.text
    run = wait_terminal(api, resp.json()["id"])
    assert run["status"] == "succeeded" and run["result"] == "within 14 days"
    first = api.get(f"/api/v1/runs/{run['id']}/trajectory").json()[0]
    prompt = " ".join(str(m["content"]) for m in first["messages"])
    assert "FROM YOUR DOCUMENTS" in prompt and "within 14 days of the return" in prompt  # the task's best passage
    assert "search_documents" in prompt
    [searched, _] = api.get(f"/api/v1/runs/{run['id']}/steps").json()
    assert searched["error"] is None and "Hirtshals" in searched["action"]["result"]
    assert searched["action"]["result"].startswith("[1] notes.md (passage 1)")


@pytest.mark.security
def test_a_zip_bomb_document_is_refused_without_inflating_it(api: httpx.Client) -> None:
    """A 30 KB DOCX whose document.xml expands to 30 MB: refused from the zip's directory, the gateway unharmed."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document><w:body><w:p>" + "a" * 30_000_000 + "</w:p></w:body></w:document>")
    col = _collection(api)
    bomb = _upload(api, col["id"], "bomb.docx", buf.getvalue())
    assert bomb.status_code == 201, bomb.text
    assert bomb.json()["status"] == "failed" and "refused as a zip bomb" in bomb.json()["reason"], bomb.json()
    assert _upload(api, col["id"], "fine.docx", make_docx(["The ferry leaves at nine."])).json()["status"] == "ready"
