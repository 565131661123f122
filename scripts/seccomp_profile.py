"""Write config/seccomp/worker.json: Docker's default seccomp profile plus what the worker's sandboxes need.

Chromium's own sandbox and the Coder's bubblewrap create user, PID and network namespaces and (bubblewrap)
mount inside them; Docker's default profile allows those calls only to a container with CAP_SYS_ADMIN,
which the worker must not have. The kernel still checks them against the new user namespace, so allowing
the calls grants nothing outside it. Usage (the default profile is moby/profiles' seccomp/default.json):

    python scripts/seccomp_profile.py path/to/default.json > config/seccomp/worker.json
"""

from __future__ import annotations

import json
import sys

SANDBOX_CALLS = ["clone", "unshare", "setns", "mount", "umount2", "pivot_root"]


def worker_profile(default: dict) -> dict:
    """Docker's default profile with the namespace and mount calls allowed without CAP_SYS_ADMIN."""
    profile = json.loads(json.dumps(default))
    profile["syscalls"].append({
        "names": SANDBOX_CALLS, "action": "SCMP_ACT_ALLOW",
        "comment": "Sparkpilot: Chromium's sandbox and bubblewrap make namespaces and mount inside them",
    })
    return profile


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(json.dumps(worker_profile(json.load(f)), indent=1))
