"""The Coder's sandbox with real bubblewrap namespaces and rlimits: each escape attempt is contained and reported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.worker.sandbox import SandboxLimits, SandboxUnavailable, available, run_python
from tests.helpers import wait_for

LIMITS = SandboxLimits(cpu_s=2, memory_mb=256, processes=16, file_mb=1, wall_s=8)


@pytest.fixture
def workspace() -> Iterator[Path]:
    """A run workspace the sandbox user can reach (pytest's tmp folders are private to root)."""
    parent = Path(tempfile.mkdtemp(prefix="sparkpilot-sandbox-"))
    os.chmod(parent, 0o711)
    yield parent / "ws"
    shutil.rmtree(parent, ignore_errors=True)


def test_bubblewrap_is_installed_and_works_here() -> None:
    assert available()  # scripts/setup.sh installs it; without it the Coder has no sandbox


def _nobody_processes() -> list[str]:
    out = subprocess.run(["ps", "-u", "65534", "-o", "pid="], capture_output=True, text=True)
    return out.stdout.split()


def test_a_program_computes_and_writes_into_its_workspace(workspace: Path) -> None:
    workspace.mkdir()
    (workspace / "in.txt").write_text("3 4 5")
    result = run_python("nums = [int(x) for x in open('in.txt').read().split()]\n"
                        "open('sum.txt', 'w').write(str(sum(nums)))\nprint('sum', sum(nums))", workspace, LIMITS)
    assert result.ok and result.stdout.strip() == "sum 12" and result.files == ["sum.txt"]
    assert (workspace / "sum.txt").read_text() == "12"


def test_the_network_is_unreachable(workspace: Path, stack) -> None:  # noqa: ANN001 - a real gateway on loopback
    code = f"import urllib.request\nurllib.request.urlopen({stack.base_url + '/health'!r}, timeout=3)"
    result = run_python(code, workspace, LIMITS)
    assert result.exit_code != 0 and "URLError" in result.stderr
    # The same request from outside the sandbox succeeds: it is the sandbox that cut it off.
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=10).returncode == 0


def test_nothing_outside_the_workspace_is_written_or_visible(workspace: Path, tmp_path: Path) -> None:
    assert tmp_path.exists()
    marker = f"escape-{uuid.uuid4().hex}"
    code = (f"import os\nopen('/tmp/{marker}', 'w').write('x')\n"
            f"print(os.path.exists({str(tmp_path)!r}), os.path.exists('/root'), os.path.exists({os.getcwd()!r}))\n"
            "open('/etc/evil', 'w')")
    result = run_python(code, workspace, LIMITS)
    assert result.stdout.split() == ["False", "False", "False"]  # the host's folders, the repo, root's home: absent
    assert "Read-only file system" in result.stderr and result.exit_code == 1
    assert not Path(f"/tmp/{marker}").exists() and not Path("/etc/evil").exists()  # its /tmp was its own
    assert result.files == []


def test_a_secret_in_the_environment_does_not_reach_the_program(workspace: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SPARKPILOT_ADMIN_TOKEN", "sp_secret_value")
    result = run_python("import os; print(sorted(os.environ))", workspace, LIMITS)
    assert "SPARKPILOT_ADMIN_TOKEN" not in result.stdout and "sp_secret_value" not in result.stdout


def test_a_fork_bomb_is_capped_and_leaves_nothing_behind(workspace: Path) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = run_python(code, workspace, LIMITS)
    assert result.limit in ("wall", "cpu") and result.exit_code != 0
    wait_for(lambda: _nobody_processes() == [], 5, "the PID namespace torn down")  # the kernel kills it after its init


def test_the_process_cap_stops_forking(workspace: Path) -> None:
    # Children stay alive, so every fork counts against the cap; the parent reports how many it made.
    code = ("import os, time\nn = 0\nwhile True:\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
            "    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n    n += 1\nprint(n)")
    result = run_python(code, workspace, LIMITS)
    assert result.exit_code == 0 and result.limit is None, result
    assert 0 < int(result.stdout) < LIMITS.processes  # bwrap's own processes count too
    wait_for(lambda: _nobody_processes() == [], 5, "the sleeping children killed with the namespace")


def test_ten_gigabytes_are_refused(workspace: Path) -> None:
    result = run_python("x = bytearray(10 * 1024 ** 3)", workspace, LIMITS)
    assert result.limit == "memory" and "MemoryError" in result.stderr


def test_an_infinite_loop_stops_at_the_cpu_limit(workspace: Path) -> None:
    result = run_python("while True:\n    pass", workspace, LIMITS)
    assert result.limit == "cpu" and result.seconds < LIMITS.wall_s


def test_a_sleeper_stops_at_the_wall_clock(workspace: Path) -> None:
    result = run_python("import time\ntime.sleep(60)", workspace, SandboxLimits(wall_s=2))
    assert result.limit == "wall" and result.exit_code < 0 and 2 <= result.seconds < 10
    wait_for(lambda: _nobody_processes() == [], 5, "the PID namespace torn down")


def test_a_workspace_the_sandbox_user_cannot_reach_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="not world-searchable"):
        run_python("print(1)", tmp_path / "private", LIMITS)


def test_a_file_past_the_size_limit_is_cut(workspace: Path) -> None:
    result = run_python("open('big', 'wb').write(b'x' * 5 * 1024 * 1024)", workspace, LIMITS)
    assert result.limit == "file_size" and (workspace / "big").stat().st_size <= 1024 * 1024


@pytest.mark.security
def test_links_and_fifos_a_program_plants_are_removed_as_it_ends(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "target.txt"
    outside.write_text("untouched")
    code = (f"import os\nos.symlink({str(outside)!r}, 'context.json')\nos.symlink('/etc', 'downloads')\n"
            "os.mkfifo('report.md')\nos.makedirs('sub')\nos.symlink('/', 'sub/root')\nopen('kept.txt', 'w').write('x')\n")
    res = run_python(code, workspace, LIMITS)
    assert res.ok, res.stderr
    assert res.removed == ["context.json", "downloads", "report.md", "sub/root"]
    left = sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*"))
    assert left == ["kept.txt", "sub"]
    assert outside.read_text() == "untouched"


@pytest.mark.security
def test_the_worker_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    from sparkpilot.errors import InvalidInput
    from sparkpilot.run_files import write_file

    folder, outside = tmp_path / "files", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (outside / "target.txt").write_text("untouched")
    # A link to a file outside: replaced by a new file, the target untouched (resolve_in alone would refuse it
    # only because it points outside; a link inside the folder to a hard-linked file is replaced too).
    (folder / "context.json").symlink_to(outside / "target.txt")
    write_file(folder, "context.json", "[]")
    assert not (folder / "context.json").is_symlink() and (folder / "context.json").read_text() == "[]"
    assert (outside / "target.txt").read_text() == "untouched"
    os.mkfifo(folder / "report.md")  # would block a plain open() forever
    write_file(folder, "report.md", "# ok")
    assert (folder / "report.md").read_text() == "# ok"
    (folder / "inner.txt").write_text("inner")
    (folder / "alias.txt").symlink_to(folder / "inner.txt")  # inside the folder: still replaced, not followed
    write_file(folder, "alias.txt", "new")
    assert (folder / "inner.txt").read_text() == "inner" and not (folder / "alias.txt").is_symlink()
    (folder / "downloads").symlink_to(folder / "sub", target_is_directory=True)  # a link as a folder on the way
    (folder / "sub").mkdir()
    with pytest.raises(InvalidInput, match="not a folder"):
        write_file(folder, "downloads/file.bin", b"x")
    assert list((folder / "sub").iterdir()) == []


@pytest.mark.security
def test_the_sandbox_holds_as_a_non_root_worker(tmp_path: Path) -> None:
    # The compose worker runs as uid 10001: the same code, run as that user, runs the program as 65534
    # inside its user namespace, with its limits, and what it writes belongs to the worker outside.
    parent = Path(tempfile.mkdtemp(prefix="sparkpilot-sandbox-user-"))
    try:
        os.chmod(parent, 0o755)
        ws = parent / "ws"
        ws.mkdir()
        os.chown(ws, 10001, 10001)
        code = ("import os, resource\nopen('out.txt', 'w').write('hi')\n"
                "print(os.getuid(), resource.getrlimit(resource.RLIMIT_NPROC)[0])")
        driver = ("import sys\nfrom pathlib import Path\nfrom services.worker.sandbox import SandboxLimits, run_python\n"
                  f"r = run_python({code!r}, Path({str(ws)!r}), SandboxLimits(processes=16, wall_s=10))\n"
                  "print(r.exit_code, r.files, r.stdout.strip(), r.stderr.strip()[-300:], sep='|')")
        out = subprocess.run(["setpriv", "--reuid=10001", "--regid=10001", "--clear-groups", "--",
                              sys.executable, "-c", driver], capture_output=True, text=True, timeout=60,
                             cwd=os.getcwd(), env={"PATH": os.environ["PATH"], "HOME": str(parent)})
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "0|['out.txt']|65534 16|", out.stdout
        assert (ws / "out.txt").stat().st_uid == 10001
    finally:
        shutil.rmtree(parent, ignore_errors=True)


# The keyctl system call's number: a harmless call the seccomp filter refuses (a session keyring lookup).
KEYCTL = {"x86_64": 250, "aarch64": 219}


@pytest.mark.security
def test_no_namespaces_keyrings_or_ptrace_inside(workspace: Path) -> None:
    code = ("import ctypes, os, subprocess\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "status = open('/proc/self/status').read()\nprint('seccomp', status.split('Seccomp:')[1].split()[0])\n"
            "for flag in (0x10000000, 0x00020000, 0x40000000):\n"
            "    print('unshare', libc.unshare(flag), ctypes.get_errno())\n"
            f"nr = {KEYCTL!r}[os.uname().machine]\n"
            "print('keyctl', libc.syscall(nr, 0, -3, 0), ctypes.get_errno())\n"
            "print('ptrace', libc.ptrace(16, 1, 0, 0), ctypes.get_errno())\n"  # PTRACE_ATTACH to the namespace's init
            "print('unshare-cmd', subprocess.run(['unshare', '-U', 'true'], capture_output=True).returncode)")
    result = run_python(code, workspace, LIMITS)
    assert result.ok, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "seccomp 2"  # a filter is loaded (mode 2)
    assert lines[1:4] == ["unshare -1 1"] * 3  # EPERM: no user, mount or network namespace
    assert lines[4] == "keyctl -1 1" and lines[5] == "ptrace -1 1"
    assert lines[6] == "unshare-cmd 1"


@pytest.mark.security
def test_tmp_is_a_small_tmpfs(workspace: Path) -> None:
    limits = SandboxLimits(cpu_s=4, memory_mb=256, file_mb=64, tmp_mb=8, wall_s=10)
    code = ("import errno\nn = 0\ntry:\n    with open('/tmp/fill', 'wb') as f:\n        for _ in range(32):\n"
            "            f.write(b'x' * 1024 * 1024)\n            f.flush()\n            n += 1\n"
            "except OSError as exc:\n    print(n, errno.errorcode[exc.errno])")
    result = run_python(code, workspace, limits)
    assert result.ok, result.stderr
    written, why = result.stdout.split()
    assert why == "ENOSPC" and int(written) <= 8  # the host's memory is not the limit
