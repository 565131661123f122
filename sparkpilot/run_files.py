"""A run's files folder: inputs a person uploads, outputs its agents write (the Coder's sandbox, the FileSurfer).

Every path from outside is confined to the folder: a name is one sanitised path component, and a
relative path may not be absolute, climb with `..`, or resolve (symlinks followed) outside it. A
sandboxed program writes into the same folder, so the worker never writes through what it may have
left there: `write_file` opens every component without following links and replaces a link or a special
file instead of writing through it, and `remove_links` clears them after each sandboxed program.
"""

from __future__ import annotations

import os
import re
import stat
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

from sparkpilot.errors import InvalidInput, NotFound, SparkpilotError
from sparkpilot.schemas import RunFilePublic
from sparkpilot.settings import CommonSettings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$")
# What a service writes (run files, screenshots, trajectories, adapters, SQLite) is its own user's only: every
# Sparkpilot service runs as one user (root natively, uid 10001 in compose), so no other account needs it.
PRIVATE_UMASK = 0o077


def private_umask() -> None:
    """Make every file and folder this process creates from now on private to its user."""
    os.umask(PRIVATE_UMASK)


def open_for_search(folder: Path, top: Path) -> Path | None:
    """Let other accounts (the sandbox's, the browser's) walk down to `folder`: the workspace's own folders
    from `top` down get search permission, never read. Returns a folder above `top` that stays closed, if any."""
    folder.mkdir(parents=True, exist_ok=True)
    top = top.resolve()
    closed = None
    for p in [folder.resolve(), *folder.resolve().parents]:
        if p == top or top in p.parents:
            p.chmod(p.stat().st_mode | 0o001)
        elif closed is None and not p.stat().st_mode & 0o001:
            closed = p
    return closed


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
    if not relative or "\x00" in relative or len(relative) > 1024 or any(len(p) > 255 for p in Path(relative).parts):
        raise InvalidInput(f"path {relative[:80]!r} is not a file name this server can hold", code="bad_path")
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise InvalidInput(f"path {relative!r} must be relative and stay inside the run's files", code="bad_path")
    root = folder.resolve()
    target = (folder / relative).resolve()
    if target != root and root not in target.parents:
        raise InvalidInput(f"path {relative!r} leads outside the run's files", code="bad_path")
    return target


def write_file(folder: Path, relative: str, data: bytes | str) -> Path:
    """Write `folder/relative` (parents created) without following a link anywhere on the way (422 if one is there).

    Confinement is by construction: each component is opened relative to the last with O_NOFOLLOW, so no
    link, wherever it points, is ever followed; one in the file's own place is replaced.
    """
    parts = [p for p in Path(relative).parts if p not in ("", ".")]
    if not parts or Path(relative).is_absolute() or ".." in parts:
        raise InvalidInput(f"path {relative!r} must be relative and stay inside the run's files", code="bad_path")
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:  # ELOOP: a symlink; ENOTDIR: a file or a FIFO where a folder should be
                raise InvalidInput(f"path {relative!r} leads through {part!r}, which is not a folder",
                                   code="bad_path") from exc
            os.close(fd)
            fd = inner
        name = parts[-1]
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise InvalidInput(f"{relative!r} is a folder", code="bad_path")
            os.unlink(name, dir_fd=fd)  # a symlink, hard link or FIFO left there is replaced, never written through
        except FileNotFoundError:
            pass
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=fd)
        with os.fdopen(out, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)
    return folder / relative


def remove_links(folder: Path) -> list[str]:
    """Delete every symlink and special file (FIFO, socket, device) under `folder`: what was removed, relative."""
    removed = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            mode = os.lstat(path).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                os.unlink(path)
                removed.append(os.path.relpath(path, folder))
    return sorted(removed)


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
