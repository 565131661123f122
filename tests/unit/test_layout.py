"""The layout's rule: the shared package and the agent core never import from services/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_sparkpilot_and_agent_never_import_services() -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.split(".")[0] == "services")
                 for package in ("sparkpilot", "agent") for p in (ROOT / package).rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert len(offenders) > 30  # both packages were read


def _main_dependencies() -> set[str]:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}


def test_the_scripts_need_only_what_make_up_installs() -> None:
    """Every third-party import of scripts/ comes from a main dependency (not the test extras)."""
    import importlib.metadata
    import sys

    owners = importlib.metadata.packages_distributions()
    main = _main_dependencies()
    local = {"sparkpilot", "agent", "services", "scripts", "tests"}
    missing = {}
    for path in (ROOT / "scripts").glob("*.py"):
        for module in _imports(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in local:
                continue
            dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
            if not dists & main and not any(_pulled_in(d, main) for d in dists):
                missing[f"{path.name}: {top}"] = sorted(dists)
    assert missing == {}


def _pulled_in(dist: str, main: set[str]) -> bool:
    """True if a main dependency requires `dist` (one level: e.g. rich's markdown-it-py)."""
    import importlib.metadata

    for name in main:
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        if any(re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") == dist
               and "extra ==" not in r for r in requires):
            return True
    return False
