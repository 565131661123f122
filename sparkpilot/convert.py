"""Files to text (markitdown) in a child process with time and memory limits, after a zip-bomb check.

A document is untrusted input: a 16 KB DOCX can expand to megabytes of XML that take the parser
seconds, a crafted one minutes and gigabytes. Converting it in the caller (the gateway's thread
pool, the worker's FileSurfer) would let one upload stall or exhaust the service, so `to_markdown`
checks a zip's members first (uncompressed size and ratio, read from its directory without
inflating anything) and converts in `python -m sparkpilot.convert`, which caps its own address
space and is killed at the deadline.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import zipfile
from pathlib import Path

TIMEOUT_S = 60.0
MEMORY_MB = 2048
MAX_UNZIPPED_BYTES = 64 * 1024 * 1024
MAX_RATIO = 100  # a member this many times its compressed size (past 1 MiB) is a bomb, not a document


def check_zip(path: Path, name: str) -> None:
    """ValueError when `path` is a zip (DOCX, XLSX, PPTX…) whose members would expand past the limits."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except zipfile.BadZipFile as exc:
        raise ValueError(f"could not convert {name}: BadZipFile: {exc}") from exc
    total = sum(m.file_size for m in members)
    if total > MAX_UNZIPPED_BYTES:
        raise ValueError(f"could not convert {name}: it expands to {total} bytes, over the limit of {MAX_UNZIPPED_BYTES}")
    for m in members:
        if m.file_size > 1024 * 1024 and m.file_size > MAX_RATIO * max(m.compress_size, 1):
            raise ValueError(f"could not convert {name}: {m.filename} expands {m.file_size // max(m.compress_size, 1)} "
                             f"times ({m.file_size} bytes), refused as a zip bomb")


def to_markdown(path: Path, name: str, any_format: bool = False) -> str:
    """The file's text; ValueError (naming `name`) if it is unreadable, too big expanded, too slow or too hungry.

    PDF, DOCX and HTML each use their own converter (markitdown's generic one would fall back to plain
    text for a broken PDF); `any_format` lets markitdown pick one for anything else (the FileSurfer).
    """
    check_zip(path, name)
    try:
        out = subprocess.run([sys.executable, "-m", "sparkpilot.convert", str(path), "any" if any_format else "strict"],
                             capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ValueError(f"could not convert {name}: it took longer than {TIMEOUT_S:.0f} s") from exc
    if out.returncode != 0:
        lines = out.stderr.decode(errors="replace").strip().splitlines() or [f"exit code {out.returncode}"]
        raise ValueError(f"could not convert {name}: {lines[-1][:300]}")
    return out.stdout.decode(errors="replace").replace("\x0c", "\n")


def _convert_here(path: Path, any_format: bool) -> str:
    from markitdown import MarkItDown, StreamInfo
    from markitdown.converters import DocxConverter, HtmlConverter, PdfConverter

    ext = path.suffix.lower()
    if any_format and ext not in (".pdf", ".docx", ".html", ".htm"):
        return MarkItDown(enable_plugins=False).convert(str(path)).text_content or ""
    converter = {".pdf": PdfConverter, ".docx": DocxConverter}.get(ext, HtmlConverter)()
    with path.open("rb") as fh:
        return converter.convert(fh, StreamInfo(extension=ext, filename=path.name)).text_content or ""


def main() -> None:
    """The child: cap memory, convert, print the text (or the error's first line on stderr, exit 1)."""
    limit = MEMORY_MB * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    path, mode = Path(sys.argv[1]), sys.argv[2]
    try:
        text = _convert_here(path, mode == "any")
    except MemoryError:
        sys.exit(f"it needs more than {MEMORY_MB} MB to convert")
    except Exception as exc:  # noqa: BLE001 - each converter raises its parser's own errors; any means "unreadable"
        sys.exit(f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}")
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
