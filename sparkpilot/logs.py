"""Logging for every process: JSON lines (or text) at SPARKPILOT_LOG_LEVEL, with the run or job they belong
to, secrets masked, and an optional rotating file.

`bind(run_id=...)` tags every line logged inside it (threads started inside inherit nothing: the
worker binds in the thread that runs the run). `add_secret(text)` masks a value from then on, e.g.
what the agent typed into a password field; bearer tokens (`sp_…`, `Bearer …`, `token=…`) are always
masked.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.handlers
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(processName)s: %(message)s"
_CONTEXT: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("sparkpilot_log_context", default={})
_API_TOKEN = re.compile(r"\bsp_[A-Za-z0-9_\-]{8,}")
# Credential-like query parameters (and bearer headers): their values never reach a log line.
_AFTER_KEYWORD = re.compile(r"(?i)(bearer\s+|[?&;](?:access_|api_|auth_|id_|refresh_)?(?:token|key|secret|password|"
                            r"passwd|pwd|signature|sig|code|session|apikey|api-key|credentials?)=)[^&;\s\"',]+")
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
MASK = "***"


@contextlib.contextmanager
def bind(**fields: str) -> Iterator[None]:
    """Tag every record logged in this block (this thread or task) with `fields`, e.g. run_id."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def add_secret(value: str) -> None:
    """Mask `value` in every record this process logs from now on (values under 4 characters are ignored)."""
    if value and len(value) >= 4:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def redact(text: str) -> str:
    """`text` with tokens and registered secrets masked."""
    text = _AFTER_KEYWORD.sub(lambda m: m.group(1) + MASK, _API_TOKEN.sub("sp_" + MASK, text))
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


class _Context(logging.Filter):
    """Adds the bound fields and masks secrets in the final message (and its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.sparkpilot_context = _CONTEXT.get()
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, process, message, the bound fields, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "process": record.processName,
                "message": record.getMessage(), **getattr(record, "sparkpilot_context", {})}
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, fmt: str = "json", file: Path | None = None, max_bytes: int = 10_000_000,
                      backups: int = 5) -> None:
    """Send records at `level` and above to stderr (or to `file`, rotated) in one format (idempotent)."""
    root = logging.getLogger()
    if not any(getattr(h, "_sparkpilot", False) for h in root.handlers):
        handlers: list[logging.Handler] = [logging.StreamHandler()]
        if file is not None:  # the file instead of stderr (make up redirects stderr to NAME.out for early crashes)
            Path(file).parent.mkdir(parents=True, exist_ok=True)
            handlers = [logging.handlers.RotatingFileHandler(file, maxBytes=max_bytes, backupCount=backups)]
        for handler in handlers:
            handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
            handler.addFilter(_Context())
            handler._sparkpilot = True  # type: ignore[attr-defined]
            root.addHandler(handler)
    root.setLevel(level)
    # uvicorn sets up its own handlers before the app is imported: route its records (access lines too) through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Third-party chatter stays at WARNING unless we debug.
    for noisy in ("httpx", "httpcore", "urllib3", "mcp", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
