"""Work the agent loop hands off its critical path: one writer thread that runs jobs in order."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class OrderedWriter:
    """Runs submitted jobs one at a time, in submission order, on its own thread.

    A job that raises stops nothing else: its error is kept and raised again on the caller's
    thread by the next `submit` or `flush`, so a write failure still ends the run, one step late.
    """

    def __init__(self, name: str = "writer") -> None:
        self._jobs: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, daemon=True, name=name)
        self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:  # after a failure, later writes would land out of order: drop them
                    job()
            except Exception as exc:  # noqa: BLE001 - kept and re-raised on the caller's thread
                log.warning("background write failed: %s", exc)
                self._error = exc
            finally:
                self._jobs.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, job: Callable[[], Any]) -> None:
        """Queue `job` after every job submitted before it (raises an earlier job's error first)."""
        self._raise()
        self._jobs.put(job)

    def flush(self) -> None:
        """Wait until every submitted job has run; raise the first error among them."""
        self._jobs.join()
        self._raise()

    def close(self) -> None:
        """Run what is queued, then stop the thread (errors are logged, not raised)."""
        self._jobs.put(None)
        self._thread.join(30)
