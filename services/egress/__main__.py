"""Start Squid as the browser's only way out: natively (`make up`), in compose's `egress` service, in the tests.

`python -m services.egress [FOLDER]` writes FOLDER/squid.conf (default: WORKSPACE/egress) from
EgressSettings and replaces itself with Squid in the foreground (exec), so a pid file or a signal
reaches Squid directly. Squid's own logs (access.log: every request and its verdict) are in FOLDER.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from pathlib import Path

from sparkpilot.egress import allow_list, squid_config
from sparkpilot.settings import get_egress_settings


def _unprivileged_user() -> str | None:
    """Squid drops root for this user (Debian's `proxy`, else `nobody`); None when not started as root."""
    if os.geteuid() != 0:
        return None
    for name in ("proxy", "nobody"):
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            continue
    sys.exit("squid refuses to run as root and neither a `proxy` nor a `nobody` user exists")


def main() -> None:
    """Write the configuration and exec Squid."""
    s = get_egress_settings()
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else s.workspace_dir / "egress"
    folder.mkdir(parents=True, exist_ok=True)
    squid = shutil.which(s.squid_path) or shutil.which("squid")
    if not squid:
        sys.exit(f"Squid not found at {s.squid_path} (Debian: apt-get install squid); the browser has no way out without it")
    user = _unprivileged_user()
    if user:  # its logs are written after it dropped root
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    conf = folder / "squid.conf"
    conf.write_text(squid_config(allow_list(s), s.egress_host, s.egress_port, str(folder), user))
    print(f"egress proxy on {s.egress_host}:{s.egress_port}; allowed non-public: {', '.join(allow_list(s)) or 'none'}",
          flush=True)
    # -N: foreground; -n: a service name of its own, so several proxies (tests, stacks) can share a machine.
    os.execv(squid, [squid, "-N", "-f", str(conf), "-n", f"sp{s.egress_port}"])


if __name__ == "__main__":
    main()
