"""The browser's network policy on the real worker and Chromium: sub-resources and navigations to
non-public addresses are refused after DNS resolution, told to the model, and audited."""

from __future__ import annotations

import httpx
import pytest

from services.worker.netpolicy import NetworkPolicy
from tests.helpers import wait_for, wait_terminal


def test_page_loads_and_navigations_to_private_addresses_are_blocked(api: httpx.Client, pages) -> None:  # noqa: ANN001
    local = pages.url.replace("127.0.0.1", "localhost")  # same server, by a name that resolves to loopback
    run = api.post("/api/v1/runs", json={
        "task": "net", "start_url": pages.url + "/netpolicy.html", "policy": "replay", "allowed_domains": ["*"],
        "actions": [{"name": "scroll", "dy": 100}, {"name": "goto", "url": local + "/index.html"},
                    {"name": "finish", "answer": "done"}]}).json()
    done = wait_terminal(api, run["id"])
    assert done["status"] == "succeeded", done["reason"]
    first, goto, _ = api.get(f"/api/v1/runs/{run['id']}/steps").json()
    # The page's own sub-resources: the image by name and the metadata endpoint, told at the first step.
    assert "localhost resolves to 127.0.0.1, which is a loopback address" in first["error"]
    assert "169.254.169.254 is a link-local" in first["error"]
    assert first["observation"]["title"] == "Net policy (fetch refused)"  # the page saw the fetch fail
    assert "ERR_BLOCKED_BY_CLIENT" in goto["error"] and "blocked by the network policy" in goto["error"]
    assert goto["observation"]["url"].startswith(pages.url)  # it never left
    entries = api.get("/api/v1/admin/audit", params={"action": "network.blocked", "limit": 50}).json()["items"]
    urls = {e["details"]["url"] for e in entries if e["target_id"] == run["id"]}
    assert {local + "/index.html?img", "http://169.254.169.254/latest/meta-data/", local + "/index.html"} <= urls
    assert all(e["actor"] == "worker" for e in entries)
    assert len(urls) == len([e for e in entries if e["target_id"] == run["id"]])  # one entry per distinct URL
    total = api.get("/api/v1/admin/audit", params={"action": "network.summary", "limit": 50}).json()["items"]
    [mine] = [e for e in total if e["target_id"] == run["id"]]
    assert mine["details"]["requests"] >= 3 and mine["details"]["distinct_urls_audited"] == len(urls)


def test_a_blocked_start_url_fails_the_run_with_the_reason(api: httpx.Client, pages) -> None:  # noqa: ANN001
    local = pages.url.replace("127.0.0.1", "localhost")
    run = api.post("/api/v1/runs", json={"task": "x", "start_url": local + "/index.html", "policy": "replay",
                                         "actions": [{"name": "finish", "answer": "x"}]}).json()
    done = wait_terminal(api, run["id"])
    assert done["status"] == "failed" and done["reason"].startswith("blocked by the network policy"), done
    assert api.get(f"/api/v1/runs/{run['id']}/steps").json() == []


@pytest.mark.parametrize(("url", "blocked"), [
    ("http://127.0.0.1:5000/", False),  # allow-listed by name
    ("http://localhost:5000/", True), ("http://169.254.169.254/", True), ("http://[::1]/", True),
    ("http://[fd00::1]/", True), ("http://10.9.8.7/", False),  # inside the allowed network
    ("http://192.168.0.1/", True), ("http://100.64.0.1/", True), ("http://0.0.0.0/", True),
    ("http://[::ffff:127.0.0.1]/", True), ("http://staging.test:8080/x", False),  # host:port entry
    ("data:text/html,x", False), ("about:blank", False),
])
def test_policy_decisions(url: str, blocked: bool) -> None:
    policy = NetworkPolicy(["127.0.0.1", "10.0.0.0/8", "staging.test:8080"])
    assert (policy.check(url) is not None) is blocked, policy.check(url)


def test_downloads_land_in_the_run_files_and_one_over_the_size_limit_is_refused(api: httpx.Client, stack, pages) -> None:  # noqa: ANN001
    run = api.post("/api/v1/runs", json={
        "task": "download", "start_url": pages.url + "/downloads.html", "policy": "replay",
        "actions": [{"name": "click", "target": "small file"}, {"name": "click", "target": "big file"},
                    {"name": "finish", "answer": "done"}]}).json()
    done = wait_terminal(api, run["id"])
    assert done["status"] == "succeeded", done["reason"]
    steps = api.get(f"/api/v1/runs/{run['id']}/steps").json()
    limit = int(stack.env["SPARKPILOT_RUN_FILE_MAX_BYTES"])
    refusal = f"download 'big.bin' refused: 3000000 bytes is over the limit of {limit} (SPARKPILOT_RUN_FILE_MAX_BYTES)"
    # A download starts after its click returns: the model hears of it after that action or the next one.
    assert [s["error"] for s in steps].count(refusal) == 1 and steps[0]["error"] is None, [s["error"] for s in steps]
    files = api.get(f"/api/v1/runs/{run['id']}/files").json()
    assert [(f["name"], f["size"]) for f in files] == [("downloads/small.txt", 100)]
    text = api.get(f"/api/v1/runs/{run['id']}/events").text
    assert "downloaded 'small.txt' (100 bytes) into the run's files as downloads/small.txt" in text
    # Nothing stays in the browser's download folder (a private one per launch, the browser account's
    # alone), whatever was kept or refused.
    import pwd
    import tempfile
    from pathlib import Path

    def emptied() -> list[Path] | None:  # (another test process's worker may be moving a download out right now)
        folders = list(Path(tempfile.gettempdir()).glob("sparkpilot-downloads-*"))
        return folders if folders and all(list(f.iterdir()) == [] for f in folders) else None

    folders = wait_for(emptied, 15, "every download folder emptied")
    owner = pwd.getpwnam("sparkpilot-browser").pw_uid
    assert all(f.stat().st_uid == owner and f.stat().st_mode & 0o077 == 0 for f in folders)
