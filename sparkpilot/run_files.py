"""A run's files folder: inputs a person uploads, outputs its agents write (the Coder's sandbox, the FileSurfer).

Every path from outside is confined to the folder: a name is one sanitised path component, and a
relative path may not be absolute, climb with `..`, or resolve (symlinks followed) outside it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

from sparkpilot.errors import InvalidInput, NotFound, SparkpilotError
from sparkpilot.schemas import RunFilePublic
from sparkpilot.settings import CommonSettings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$")


class FileTooLarge(SparkpilotError):
    """An upload past SPARKPILOT_RUN_FILE_MAX_BYTES."""

    status_code = 413
    code = "file_too_large"


def files_dir(settings: CommonSettings, run_id: str) -> Path:
    """The run's files folder (created on first use)."""
    return settings.workspace_dir / "runs" / run_id / "files"


def safe_name(name: str) -> str:
    """`name` if it is one harmless file name (letters, digits, `._ -`, not starting with a dot), else 422."""
    name = name.strip()
    if not _NAME.match(name) or name.endswith((".", " ")) or ".." in name:
        raise InvalidInput(f"bad file name {name!r}: use letters, digits, '.', '_', '-' and spaces "
                           "(at most 128, not starting with '.')", code="bad_file_name")
    return name


def resolve_in(folder: Path, relative: str) -> Path:
    """`folder/relative`, refused (422) if absolute, climbing with `..`, or resolving outside `folder`."""
    if not relative or Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise InvalidInput(f"path {relative!r} must be relative and stay inside the run's files", code="bad_path")
    root = folder.resolve()
    target = (folder / relative).resolve()
    if target != root and root not in target.parents:
        raise InvalidInput(f"path {relative!r} leads outside the run's files", code="bad_path")
    return target


def list_files(folder: Path) -> list[RunFilePublic]:
    """The files in the folder (recursively), by name."""
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and not path.name.startswith(".upload-"):
            st = path.stat()
            out.append(RunFilePublic(name=str(path.relative_to(folder)), size=st.st_size,
                                     modified_at=datetime.fromtimestamp(st.st_mtime, timezone.utc)))
    return out


def find(folder: Path, name: str) -> Path:
    """An existing file of the folder by its listed name; 404 if there is none."""
    path = resolve_in(folder, name)
    if not path.is_file():
        raise NotFound(f"no file {name!r} in this run", code="file_not_found")
    return path


async def save_upload(folder: Path, name: str, chunks: AsyncIterator[bytes], max_bytes: int,
                      limit_setting: str = "SPARKPILOT_RUN_FILE_MAX_BYTES") -> RunFilePublic:
    """Stream an upload into `folder/name` (atomically, replacing); past `max_bytes` nothing is kept (413)."""
    name = safe_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".upload-{uuid.uuid4().hex}"
    size = 0
    try:
        with tmp.open("wb") as fh:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(f"the file is larger than {max_bytes} bytes ({limit_setting})")
                fh.write(chunk)
        os.replace(tmp, folder / name)
    finally:
        tmp.unlink(missing_ok=True)
    return next(f for f in list_files(folder) if f.name == name)
