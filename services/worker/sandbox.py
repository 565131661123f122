"""Run untrusted Python (the Coder agent's code) in a sandbox: bubblewrap namespaces, a seccomp filter, limits.

bubblewrap gives the program fresh user, PID, network, IPC and UTS namespaces (`--unshare-all
--unshare-user`): no network at all (its own empty loopback), a read-only /usr and /etc, a size-limited
private /tmp that vanishes with it, and the run's workspace folder as the only writable place it shares
with the host; it runs as uid/gid 65534 inside (`--uid/--gid`), may not create further user namespaces
(`--disable-userns`), and a seccomp filter refuses the system calls a Python program never needs
(namespaces, mounts, ptrace, keyrings, bpf, kernel modules...). When the worker is root (natively),
`setpriv` first drops to the host's `nobody`, so nothing inside maps to root; as any other user (the
compose worker) bubblewrap runs as that user. `prlimit`, inside the sandbox, caps CPU seconds, address
space, file size, open files and processes (counted in the sandbox's own user namespace). No
`preexec_fn`: the worker has threads. A wall-clock timeout kills the whole process group. The symlinks
and special files the program leaves are deleted as it ends. What went wrong is reported in the result,
never raised: a misbehaving program is the model's problem to read.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import signal
import subprocess
import tempfile
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
    tmp_mb: int = 64  # its private /tmp, a tmpfs: host memory outside RLIMIT_AS, so it has its own size


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
    folder = Path(tempfile.mkdtemp(prefix="sparkpilot-sandbox-probe-"))
    try:
        os.chmod(folder, 0o711)
        probe = run_python("print('ok')", folder / "ws", SandboxLimits(wall_s=10), _check=False)
        return probe.stdout.strip() == "ok"
    except (OSError, SandboxUnavailable):
        return False
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# System calls a sandboxed Python program never needs; each is refused with EPERM. Namespaces, mounts and
# ptrace are closed by the namespaces and dropped capabilities too: the filter holds if one of those fails.
DENIED_SYSCALLS = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr", "ptrace", "process_vm_readv", "process_vm_writev",
    "pidfd_getfd", "kcmp", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "syslog", "open_by_handle_at", "name_to_handle_at", "quotactl", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "fanotify_init", "settimeofday", "clock_settime", "adjtimex",
    "clock_adjtime", "sethostname", "setdomainname", "iopl", "ioperm", "vhangup", "lookup_dcookie",
)
# clone() flags that make namespaces: refused. clone3() passes its flags in memory a filter cannot read, so
# it answers ENOSYS and the C library falls back to clone().
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes:
    """The seccomp filter as BPF, for bubblewrap's --seccomp (built once with libseccomp)."""
    import pyseccomp as seccomp

    flt = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            flt.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (ValueError, OSError):  # a call this architecture does not have (iopl on arm64)
            continue
    for flag in NAMESPACE_FLAGS:
        flt.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    flt.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as f:
        flt.export_bpf(f)
        f.seek(0)
        return f.read()


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def command(workspace: Path, limits: SandboxLimits = SandboxLimits(), seccomp_fd: int | None = None) -> list[str]:
    """The command line that runs Python on stdin with `workspace` mounted at /workspace."""
    mb = 1024 * 1024
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"] if os.geteuid() == 0 else []
    seccomp = ["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []
    rlimits = ["/usr/bin/prlimit", f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}", f"--as={limits.memory_mb * mb}",
               f"--fsize={limits.file_mb * mb}", f"--nofile={limits.open_files}", f"--nproc={limits.processes}",
               "--core=0", "--"]
    return drop + [
        "bwrap", "--unshare-all", "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--disable-userns",
        "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64", "--ro-bind", "/etc", "/etc",
        "--bind", str(workspace), "/workspace", "--size", str(limits.tmp_mb * mb), "--tmpfs", "/tmp",
        "--dev", "/dev", "--proc", "/proc", "--chdir", "/workspace", *seccomp, *rlimits, PYTHON, "-I", "-"]


def run_python(code: str, workspace: Path, limits: SandboxLimits = SandboxLimits(), _check: bool = True) -> SandboxResult:
    """Run `code` with `workspace` as its only writable folder; the result says how it ended."""
    if _check and shutil.which("bwrap") is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    workspace.mkdir(parents=True, exist_ok=True)
    workspace = workspace.resolve()
    if os.geteuid() == 0:  # setpriv drops to `nobody`, who must walk down to the folder and own it
        blocked = [str(p) for p in workspace.parents if not os.stat(p).st_mode & 0o001]
        if blocked:
            raise SandboxUnavailable(f"the sandbox user cannot reach {workspace}: {blocked[0]} is not world-searchable")
        _give_to_nobody(workspace)  # the sandbox's user may read and write here, and only here
    before = _snapshot(workspace)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/workspace", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    read_fd, write_fd = os.pipe()  # the filter, read by bubblewrap from an inherited descriptor
    t0 = time.monotonic()
    try:
        program = seccomp_program()
        os.write(write_fd, program)  # a few hundred bytes: fits the pipe's buffer
        os.close(write_fd)
        write_fd = -1
        proc = subprocess.Popen(command(workspace, limits, read_fd), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, pass_fds=(read_fd,), start_new_session=True, text=True)
    except OSError as exc:  # setpriv/bwrap missing, libseccomp missing: the program cannot run here
        raise SandboxUnavailable(f"the sandbox cannot start: {exc}") from exc
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    limit = None
    try:
        out, err = proc.communicate(code, timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        limit = "wall"
        os.killpg(proc.pid, signal.SIGKILL)  # bwrap's session: with it goes the whole PID namespace
        out, err = proc.communicate()
    seconds = round(time.monotonic() - t0, 3)
    code_ = proc.returncode
    if code_ != 0 and err.startswith(("bwrap:", "setpriv:", "prlimit:")):  # the sandbox failed: the program never ran
        raise SandboxUnavailable(f"the sandbox cannot start: {err.strip()[:300]}")
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


def _give_to_nobody(folder: Path) -> None:
    # The worker writes the run's files private to itself (umask 077): hand the folder and everything in it
    # to the sandbox's user, never following a link.
    os.chown(folder, NOBODY, NOBODY)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chown(os.path.join(root, name), NOBODY, NOBODY, follow_symlinks=False)


def _cpu_spent(limits: SandboxLimits, seconds: float) -> bool:
    # A SIGKILL/SIGXCPU after at least the CPU budget of wall time is the CPU limit, not an outside kill.
    return seconds >= limits.cpu_s * 0.9
