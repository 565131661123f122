"""Run untrusted Python (the Coder agent's code) in a sandbox: bubblewrap namespaces plus resource limits.

The child runs as the unprivileged `nobody` user in fresh user, PID, network, IPC and UTS namespaces
(`bwrap --unshare-all`): no network at all (its own empty loopback), a read-only /usr and /etc, a private
/tmp that vanishes with it, and the run's workspace folder as the only writable place it shares with
the host; the symlinks and special files it leaves there are deleted as it ends. setrlimit caps CPU seconds, address space, file size, open files and processes (counted for
`nobody`, so a fork bomb stops at the cap); a wall-clock timeout kills the whole process group. What
went wrong is reported in the result, never raised: a misbehaving program is the model's problem to read.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sparkpilot.run_files import remove_links

NOBODY = 65534
OUTPUT_LIMIT = 64 * 1024  # characters of stdout/stderr kept
# A Python under /usr (bound read-only): Debian's natively, the image's /usr/local one in the worker image.
PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.path.exists(p)), "/usr/bin/python3")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here."""


@dataclass(frozen=True)
class SandboxLimits:
    """What one program may use."""

    cpu_s: int = 10
    memory_mb: int = 512
    processes: int = 32
    file_mb: int = 16
    open_files: int = 64
    wall_s: float = 30.0


@dataclass
class SandboxResult:
    """What happened: exit code (negative: killed by that signal), output, the limit hit if any, files written."""

    exit_code: int
    stdout: str
    stderr: str
    limit: str | None = None  # "wall", "cpu", "memory", "file_size" or None
    files: list[str] = field(default_factory=list)  # workspace paths created or changed, relative
    seconds: float = 0.0
    removed: list[str] = field(default_factory=list)  # symlinks and special files it left, deleted afterwards

    @property
    def ok(self) -> bool:
        """The program exited 0 within its limits."""
        return self.exit_code == 0 and self.limit is None


def available() -> bool:
    """True when bubblewrap can make its namespaces on this machine."""
    if shutil.which("bwrap") is None:
        return False
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="sparkpilot-sandbox-probe-"))
    try:
        os.chmod(folder, 0o711)
        probe = run_python("print('ok')", folder / "ws", SandboxLimits(wall_s=10), _check=False)
        return probe.stdout.strip() == "ok"
    except (OSError, SandboxUnavailable):
        return False
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def _limits(limits: SandboxLimits):  # noqa: ANN202 - a preexec_fn
    def apply() -> None:
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb, limits.file_mb * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    return apply


def command(workspace: Path) -> list[str]:
    """The bwrap command line that runs Python on stdin with `workspace` mounted at /workspace."""
    return ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--ro-bind", "/etc", "/etc",
            "--bind", str(workspace), "/workspace", "--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc",
            "--chdir", "/workspace", PYTHON, "-I", "-"]


def run_python(code: str, workspace: Path, limits: SandboxLimits = SandboxLimits(), _check: bool = True) -> SandboxResult:
    """Run `code` with `workspace` as its only writable folder; the result says how it ended."""
    if _check and shutil.which("bwrap") is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    workspace.mkdir(parents=True, exist_ok=True)
    workspace = workspace.resolve()
    blocked = [str(p) for p in workspace.parents if not os.stat(p).st_mode & 0o001]
    if blocked:  # bwrap runs as `nobody`: it must be able to walk down to the folder it binds
        raise SandboxUnavailable(f"the sandbox user cannot reach {workspace}: {blocked[0]} is not world-searchable")
    os.chown(workspace, NOBODY, NOBODY)  # the sandbox's user may write here, and only here
    before = _snapshot(workspace)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/workspace", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(command(workspace), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, preexec_fn=_limits(limits), start_new_session=True, text=True)
    limit = None
    try:
        out, err = proc.communicate(code, timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        limit = "wall"
        os.killpg(proc.pid, signal.SIGKILL)  # bwrap's session: with it goes the whole PID namespace
        out, err = proc.communicate()
    seconds = round(time.monotonic() - t0, 3)
    code_ = proc.returncode
    if limit is None:
        if code_ in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL) \
                and _cpu_spent(limits, seconds):
            limit = "cpu"
        elif "MemoryError" in err:
            limit = "memory"
        elif code_ in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ) or "File too large" in err:
            limit = "file_size"
    # Before the worker touches the folder again: nothing it writes there may lead elsewhere.
    removed = remove_links(workspace)
    after = _snapshot(workspace)
    files = sorted(p for p, meta in after.items() if before.get(p) != meta)
    return SandboxResult(code_, out[-OUTPUT_LIMIT:], err[-OUTPUT_LIMIT:], limit, files, seconds, removed)


def _cpu_spent(limits: SandboxLimits, seconds: float) -> bool:
    # A SIGKILL/SIGXCPU after at least the CPU budget of wall time is the CPU limit, not an outside kill.
    return seconds >= limits.cpu_s * 0.9
