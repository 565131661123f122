"""A run's files through the real gateway: upload inputs, list, download; names and paths confined, size capped."""

from __future__ import annotations

import os

import httpx

from sparkpilot.run_files import files_dir
from sparkpilot.settings import CommonSettings
from tests.helpers import FINISH, Stack, wait_terminal

WAITING = {"policy": "replay", "actions": [{"name": "wait", "seconds": 5}, {"name": "finish", "answer": "ok"}]}


def _run(api: httpx.Client, pages, body: dict) -> str:  # noqa: ANN001
    resp = api.post("/api/v1/runs", json={"task": "files", "start_url": pages.url + "/index.html", **body})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def test_upload_list_download_and_replace(api: httpx.Client, stack: Stack, pages) -> None:  # noqa: ANN001
    run_id = _run(api, pages, WAITING)
    data = os.urandom(70_000)
    resp = api.post(f"/api/v1/runs/{run_id}/files", params={"name": "invoice 2026.pdf"}, content=data)
    assert resp.status_code == 201, resp.text
    assert resp.json()["name"] == "invoice 2026.pdf" and resp.json()["size"] == 70_000
    # Past the API's general body limit (1 MB) but under the file cap (2 MiB in the tests): accepted.
    assert api.post(f"/api/v1/runs/{run_id}/files", params={"name": "scan.png"}, content=b"p" * 1_500_000).status_code == 201
    assert api.post(f"/api/v1/runs/{run_id}/files", params={"name": "notes.txt"}, content=b"v1").status_code == 201
    assert api.post(f"/api/v1/runs/{run_id}/files", params={"name": "notes.txt"}, content=b"v2!").status_code == 201
    listed = api.get(f"/api/v1/runs/{run_id}/files").json()
    assert [(f["name"], f["size"]) for f in listed] == [("invoice 2026.pdf", 70_000), ("notes.txt", 3), ("scan.png", 1_500_000)]
    got = api.get(f"/api/v1/runs/{run_id}/files/invoice 2026.pdf")
    assert got.status_code == 200 and got.content == data
    assert "attachment" in got.headers["content-disposition"]
    # Files an agent writes into the folder (the sandbox's workspace) are listed and downloadable too.
    folder = files_dir(CommonSettings(workspace_dir=stack.env["SPARKPILOT_WORKSPACE_DIR"]), run_id)
    (folder / "out").mkdir()
    (folder / "out" / "report.md").write_text("# done")
    assert api.get(f"/api/v1/runs/{run_id}/files/out/report.md").text == "# done"
    assert "out/report.md" in [f["name"] for f in api.get(f"/api/v1/runs/{run_id}/files").json()]
    # Once the run has ended its inputs are frozen; its files stay readable.
    wait_terminal(api, run_id, timeout=60)
    late = api.post(f"/api/v1/runs/{run_id}/files", params={"name": "late.txt"}, content=b"x")
    assert late.status_code == 409 and late.json()["error"]["code"] == "run_finished"
    assert api.get(f"/api/v1/runs/{run_id}/files/notes.txt").content == b"v2!"


def test_bad_names_paths_sizes_and_owners_are_refused_and_nothing_is_written(api: httpx.Client, user_api: httpx.Client,  # noqa: E501
                                                                             stack: Stack, pages, tmp_path) -> None:  # noqa: ANN001
    run_id = _run(api, pages, WAITING)
    for name in ("../escape.txt", ".env", "a/b.txt", "x" * 129, "..", "trail."):
        resp = api.post(f"/api/v1/runs/{run_id}/files", params={"name": name}, content=b"x")
        assert resp.status_code == 422, (name, resp.text)
        assert resp.json()["error"]["code"] in ("bad_file_name", "validation_error", "invalid_input"), resp.text
    nul = api.post(f"/api/v1/runs/{run_id}/files", params={"name": "evil\x00.txt"}, content=b"x")
    assert nul.status_code == 422 and nul.json()["error"]["code"] == "nul_character", nul.text  # before any route
    big = api.post(f"/api/v1/runs/{run_id}/files", params={"name": "big.bin"}, content=b"x" * (2 * 1024 * 1024 + 1))
    assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"
    # Without a Content-Length (chunked), the route's own streaming cap stops it.
    chunked = api.post(f"/api/v1/runs/{run_id}/files", params={"name": "big.bin"}, content=iter([b"x" * 1024 * 1024] * 3))
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "file_too_large"
    assert api.get(f"/api/v1/runs/{run_id}/files").json() == []  # nothing half-written, no temporary left listed
    folder = files_dir(CommonSettings(workspace_dir=stack.env["SPARKPILOT_WORKSPACE_DIR"]), run_id)
    assert not folder.exists() or list(folder.iterdir()) == []
    # Paths that climb out, absolute ones and symlinks out of the folder are refused when reading.
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "link").symlink_to(secret)
    for name in ("..%2F..%2Fsparkpilot.db", "link", "%2Fetc%2Fpasswd", "nope.txt"):
        resp = api.get(f"/api/v1/runs/{run_id}/files/{name}")
        assert resp.status_code in (404, 422) and "error" in resp.json(), (name, resp.text)
    # Another user's run does not exist for them.
    assert user_api.get(f"/api/v1/runs/{run_id}/files").status_code == 404
    assert user_api.post(f"/api/v1/runs/{run_id}/files", params={"name": "a.txt"}, content=b"x").status_code == 404
    assert api.get("/api/v1/runs/nope/files").status_code == 404
    wait_terminal(api, run_id, timeout=60)


def test_a_finished_run_without_files_lists_none(api: httpx.Client, pages) -> None:  # noqa: ANN001
    run_id = _run(api, pages, FINISH)
    wait_terminal(api, run_id, timeout=60)
    assert api.get(f"/api/v1/runs/{run_id}/files").json() == []


def test_what_a_run_leaves_is_private_to_the_services_user(api: httpx.Client, stack: Stack, pages) -> None:  # noqa: ANN001
    # The gateway writes the uploaded file, the worker the screenshots and the trajectory: none of them may
    # be readable by another account on the machine (umask 077 in every service).
    run_id = _run(api, pages, WAITING)
    assert api.post(f"/api/v1/runs/{run_id}/files", params={"name": "in.txt"}, content=b"secret").status_code == 201
    assert wait_terminal(api, run_id, timeout=60)["status"] == "succeeded"
    settings = CommonSettings(workspace_dir=stack.env["SPARKPILOT_WORKSPACE_DIR"])
    written = [files_dir(settings, run_id) / "in.txt", *(settings.artifacts_dir / "runs" / run_id).glob("*.png")]
    assert len(written) >= 3, written  # the upload and a screenshot per step
    for path in written:
        assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
    assert (settings.artifacts_dir / "runs" / run_id).stat().st_mode & 0o077 == 0
