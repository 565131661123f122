"""Attacks through the browser, replayed against the real stack (gateway, worker, Chromium, egress proxy):
each must be refused, and where the target is a listener of the test's own, nothing may reach it."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.helpers import wait_for, wait_terminal

pytestmark = pytest.mark.security


class Listener:
    """A TCP and a UDP socket on 127.0.0.1 that count whatever reaches them."""

    def __init__(self) -> None:
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen()
        self.tcp.settimeout(0.1)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.1)
        self.hits: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.tcp.getsockname()[1]

    @property
    def udp_port(self) -> int:
        return self.udp.getsockname()[1]

    def _serve(self) -> None:
        while not self._stop.is_set():
            for sock, kind in ((self.tcp, "tcp"), (self.udp, "udp")):
                try:
                    if kind == "tcp":
                        conn, _ = sock.accept()
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nreached")
                        conn.close()
                    else:
                        sock.recvfrom(4096)
                    self.hits.append(kind)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def listener():  # noqa: ANN201
    lst = Listener()
    yield lst
    lst.close()


def _replay(api: httpx.Client, actions: list[dict], **body) -> tuple[dict, list[dict]]:  # noqa: ANN003
    run = api.post("/api/v1/runs", json={"task": "attack", "policy": "replay", "max_steps": len(actions) + 2,
                                         "actions": actions, **body})
    assert run.status_code == 201, run.text
    done = wait_terminal(api, run.json()["id"], timeout=90)
    return done, api.get(f"/api/v1/runs/{done['id']}/steps").json()


def test_local_files_cannot_be_opened_in_any_spelling(api: httpx.Client, tmp_path: Path) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    path = tmp_path / "secret.txt"
    path.write_text(secret)
    urls = [f"file://{path}", f"file://127.0.0.1{path}", f"FILE://{path}", f"file://localhost\\@127.0.0.1/..{path}",
            f"view-source:file://{path}", f"filesystem:file://{path}", "chrome://version", "chrome://settings",
            f" file://{path}", "data:text/html,<title>data page</title>", "javascript:document.title='x'"]
    actions = []
    for url in urls:  # a scroll between refusals, so the run does not end on consecutive failures
        actions += [{"name": "goto", "url": url}, {"name": "scroll", "dy": 10}]
    # The worst case: no start URL and every site allowed (`*`); only the scheme check stands.
    done, steps = _replay(api, [*actions, {"name": "finish", "answer": "done"}], allowed_domains=["*"])
    assert done["status"] == "succeeded", done["reason"]
    gotos = [s for s in steps if s["action"] and s["action"]["name"] == "goto"]
    assert len(gotos) == len(urls)
    for step in gotos:
        assert step["error"] and step["error"].startswith("goto refused: "), step
    assert all(s["observation"]["url"] == "about:blank" for s in steps), [s["observation"]["url"] for s in steps]
    assert secret not in json.dumps(steps)
    assert not any(s["observation"]["title"] for s in steps)  # about:blank throughout, never the data: page


def test_a_file_start_url_is_refused_by_the_api(api: httpx.Client, tmp_path: Path) -> None:
    for url in (f"file://{tmp_path}/x", "file://127.0.0.1/etc/os-release", "view-source:http://127.0.0.1/",
                "data:text/html,x", "chrome://version"):
        r = api.post("/api/v1/runs", json={"task": "t", "start_url": url, "policy": "replay",
                                           "actions": [{"name": "finish", "answer": "x"}]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "url_not_allowed", (url, r.text)


def test_a_two_hop_redirect_to_a_private_address_never_arrives(api: httpx.Client, pages, listener: Listener) -> None:  # noqa: ANN001
    # An allowed host redirects to itself, then to a name that resolves to loopback: the route sees only the first URL.
    private = f"http://localhost:{listener.port}/"
    hop2 = f"{pages.url}/redirect?to={quote(private, safe='')}"
    url = f"{pages.url}/redirect?to={quote(hop2, safe='')}"
    done, steps = _replay(api, [{"name": "goto", "url": url}, {"name": "wait", "seconds": 1},
                                {"name": "finish", "answer": "done"}], allowed_domains=["*"])
    time.sleep(1)
    assert listener.hits == []
    assert "redirect blocked by the network policy" in (steps[0]["error"] or ""), steps[0]
    assert "reached" not in json.dumps(steps)


def test_meta_refresh_popup_websocket_and_stun_reach_nothing(api: httpx.Client, pages, listener: Listener) -> None:  # noqa: ANN001
    target = f"http://localhost:{listener.port}/"
    url = (f"{pages.url}/attacks.html?ws={listener.port}&stun={listener.udp_port}"
           f"&open={quote(target + 'popup', safe='')}&refresh={quote(target + 'refresh', safe='')}")
    done, steps = _replay(api, [{"name": "wait", "seconds": 3}, {"name": "finish", "answer": "done"}],
                          start_url=url, allowed_domains=["*"])
    time.sleep(1)
    assert listener.hits == [], listener.hits  # no TCP (page, popup, WebSocket) and no UDP (STUN)
    assert done["status"] == "succeeded", done["reason"]
    assert "blocked by the network policy" in (steps[0]["error"] or ""), steps[0]


def test_the_backslash_at_trick_does_not_pass_an_allow_list(api: httpx.Client, pages) -> None:  # noqa: ANN001
    port = pages.url.rsplit(":", 1)[1]
    done, steps = _replay(api, [{"name": "goto", "url": f"http://127.0.0.1:{port}\\@example.com/index.html"},
                                {"name": "finish", "answer": "done"}], allowed_domains=["example.com"])
    assert "refused by the approval policy" in (steps[0]["error"] or "") and "outside this run's allowed domains" in steps[0]["error"]
    assert steps[1]["observation"]["url"] == "about:blank"


def test_allowed_domains_hold_for_links_and_redirects(api: httpx.Client, pages) -> None:  # noqa: ANN001
    # A link off the run's site (default: the start URL's host) is refused by the browser's route.
    elsewhere = pages.url.replace("127.0.0.1", "localhost") + "/index.html"
    done, steps = _replay(api, [{"name": "click", "target": "follow me"}, {"name": "wait", "seconds": 1},
                                {"name": "finish", "answer": "done"}],
                          start_url=f"{pages.url}/attacks.html?link={quote(elsewhere, safe='')}")
    # The click returns before its navigation starts: the model hears of the block after it or after the wait.
    errors = " ".join(s["error"] or "" for s in steps[:2])
    assert f"{elsewhere} is outside this run's allowed domains" in errors, errors
    assert steps[2]["observation"]["url"].startswith(pages.url + "/attacks.html")
    # A redirect that lands outside the allowed prefix: the page is left before anyone reads it.
    url = f"{pages.url}/redirect?to={quote(pages.url + '/index.html', safe='')}"
    done, steps = _replay(api, [{"name": "goto", "url": url}, {"name": "finish", "answer": "done"}],
                          allowed_domains=[f"{pages.url}/redirect"])
    assert "left the page" in (steps[0]["error"] or "") and "outside this run's allowed domains" in steps[0]["error"]
    assert steps[1]["observation"]["url"] == "about:blank"


def test_a_typed_password_reaches_the_page_and_nothing_else(api: httpx.Client, pages) -> None:  # noqa: ANN001
    secret = f"pw-{uuid.uuid4().hex[:10]}"
    done, steps = _replay(api, [{"name": "fill", "target": "User", "text": "ada"},
                                {"name": "fill", "target": "Password", "text": secret},
                                {"name": "click", "target": "Sign in"}, {"name": "finish", "answer": "signed in"}],
                          start_url=pages.url + "/password.html", approval_policy={"submit_sensitive": "allow"})
    assert done["status"] == "succeeded", done["reason"]
    assert steps[3]["observation"]["title"] == f"password of {len(secret)} characters"  # the page got it
    assert steps[1]["action"]["args"]["text"] == "***" and steps[0]["action"]["args"]["text"] == "ada"
    events = api.get(f"/api/v1/runs/{done['id']}/events").text
    trajectory = api.get(f"/api/v1/runs/{done['id']}/trajectory").text
    for record in (json.dumps(steps), events, trajectory):
        assert secret not in record


def _browser_processes(user: str) -> list[tuple[int, str]]:
    import pwd

    uid = pwd.getpwnam(user).pw_uid
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except OSError:
            continue  # ended meanwhile
    return found


def test_the_workers_chromium_is_sandboxed_and_not_root(api: httpx.Client, pages, stack) -> None:  # noqa: ANN001
    # Natively the worker is root: Chromium runs as SPARKPILOT_BROWSER_USER with its own sandbox on.
    run = api.post("/api/v1/runs", json={"task": "sandboxed", "start_url": pages.url + "/index.html", "policy": "replay",
                                         "actions": [{"name": "wait", "seconds": 4}, {"name": "finish", "answer": "ok"}]})
    assert run.status_code == 201, run.text
    procs = wait_for(lambda: [p for p in _browser_processes("sparkpilot-browser") if "--type=renderer" in p[1]]
                     and _browser_processes("sparkpilot-browser"), 30, "the worker's Chromium running")
    browser = [cmd for _, cmd in procs if "--type=" not in cmd and "crashpad" not in cmd]
    assert browser and not any("--no-sandbox" in cmd for _, cmd in procs), procs
    checked = 0
    for pid in [pid for pid, cmd in procs if "--type=renderer" in cmd]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue  # a renderer that ended meanwhile (a page closed)
        assert status.split("Seccomp:")[1].split()[0] == "2"  # the seccomp-bpf sandbox
        assert len(status.split("NSpid:")[1].splitlines()[0].split()) > 1  # in a PID namespace of its own
        checked += 1
    assert checked >= 1
    browser_pid = next(pid for pid, cmd in procs if "--type=" not in cmd and "crashpad" not in cmd)
    environ = Path(f"/proc/{browser_pid}/environ").read_bytes().decode(errors="replace")
    assert "SPARKPILOT_ADMIN_TOKEN" not in environ and "DATABASE_URL" not in environ and stack.token not in environ
    assert wait_terminal(api, run.json()["id"], timeout=60)["status"] == "succeeded"
