"""Load for the fault and scale tests: many runs submitted at once, each followed live over SSE."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx

from tests.helpers import wait_for


class Followers:
    """Live SSE clients, one per run, on a background thread: each reconnects with Last-Event-ID whenever
    its stream breaks (as the dashboard does) and keeps every event id it received, duplicates included."""

    def __init__(self, base_url: str, token: str, run_ids: list[str], timeout: float = 600) -> None:
        self.base_url, self.token, self.run_ids, self.timeout = base_url, token, run_ids, timeout
        self.received: dict[str, list[int]] = {r: [] for r in run_ids}
        self.reconnects = 0
        self.errors: list[str] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._all()), daemon=True)
        self.thread.start()

    async def _all(self) -> None:
        limits = httpx.Limits(max_connections=len(self.run_ids) + 5)
        async with httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"},
                                     limits=limits, timeout=httpx.Timeout(10.0, read=30.0)) as client:
            await asyncio.gather(*(asyncio.wait_for(self._one(client, r), self.timeout) for r in self.run_ids),
                                 return_exceptions=True)

    async def _one(self, client: httpx.AsyncClient, run_id: str) -> None:
        from httpx_sse import SSEError, aconnect_sse

        got = self.received[run_id]
        while True:
            headers = {"Last-Event-ID": str(got[-1])} if got else {}
            try:
                async with aconnect_sse(client, "GET", f"/api/v1/runs/{run_id}/events", headers=headers) as src:
                    if src.response.status_code == 200:
                        async for sse in src.aiter_sse():
                            if sse.id and sse.data:  # a keep-alive comes through with the last id and no data
                                got.append(int(sse.id))
                                if sse.event in ("run.succeeded", "run.failed", "run.cancelled"):
                                    return
            except (httpx.TransportError, SSEError) as exc:
                self.errors.append(f"{run_id}: {type(exc).__name__}")
            self.reconnects += 1
            await asyncio.sleep(0.5)

    def join(self) -> None:
        """Wait until every stream has seen its run's end (or the timeout)."""
        self.thread.join(self.timeout + 30)

    def figures(self, api: httpx.Client) -> dict[str, int]:
        """Events lost (stored, never received) and delivered twice, over every run, against the stored ones."""
        lost = duplicated = 0
        for run_id, got in self.received.items():
            text = api.get(f"/api/v1/runs/{run_id}/events").text
            stored = [json.loads(line[5:])["id"] for line in text.splitlines() if line.startswith("data:")]
            lost += len(set(stored) - set(got))
            duplicated += len(got) - len(set(got))
        return {"events_lost": lost, "events_delivered_twice": duplicated, "stream_reconnects": self.reconnects}


def submit_load(api: httpx.Client, n: int, body: dict) -> list[str]:
    """Submit `n` runs of `body` at once; their ids."""
    ids = []
    for _ in range(n):
        resp = api.post("/api/v1/runs", json=body)
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    return ids


def wait_all_terminal(api: httpx.Client, run_ids: list[str], timeout: float) -> list[dict]:
    """Every run of `run_ids` once all have ended."""
    def done() -> list[dict] | None:
        runs = [api.get(f"/api/v1/runs/{r}").json() for r in run_ids]
        return runs if all(r["status"] in ("succeeded", "failed", "cancelled") for r in runs) else None
    return wait_for(done, timeout, f"{len(run_ids)} runs to end", interval=1)
