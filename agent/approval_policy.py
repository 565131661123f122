"""The approval policy: which actions need a person's yes (config/approvals.json), and spotting them.

Each category is `allow`, `ask` or `deny`. Web actions are judged against the observation (a submit
on a page with a password or payment field, a download link, a URL outside the allowed domains); the
team's Coder and FileSurfer name their own categories (run_code, overwrite_file, delete_file).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sparkpilot.urls import url_allowed
from agent.observe import Observation

Rule = Literal["allow", "ask", "deny"]
CATEGORIES = ("submit_sensitive", "download", "leave_allowed_domains", "run_code", "overwrite_file", "delete_file",
              "mcp_tool")
# Without a policy file: nothing leaves the allowed domains, everything else is allowed (benchmarks, tests in process).
DEFAULT_RULES: dict[str, Rule] = {c: "allow" for c in CATEGORIES} | {"leave_allowed_domains": "deny"}
_PAYMENT = re.compile(r"card|cc-|cvc|cvv|iban|expir|payment|security code", re.I)


@dataclass(frozen=True)
class Judgement:
    """A category an action falls in, the rule for it and why."""

    category: str
    rule: Rule
    reason: str


@dataclass
class ApprovalPolicy:
    """Rules by category."""

    rules: dict[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    @classmethod
    def load(cls, path: Path | None, overrides: dict[str, Rule] | None = None) -> "ApprovalPolicy":
        """The rules of a policy file (missing categories: the defaults), then a run's overrides."""
        rules = dict(DEFAULT_RULES)
        if path is not None:
            data = json.loads(Path(path).read_text())
            unknown = set(data.get("rules", {})) - set(CATEGORIES)
            if unknown:
                raise ValueError(f"{path}: unknown approval categories {sorted(unknown)}; known: {list(CATEGORIES)}")
            bad = {k: v for k, v in data.get("rules", {}).items() if v not in ("allow", "ask", "deny")}
            if bad:
                raise ValueError(f"{path}: rules must be allow, ask or deny, not {bad}")
            rules.update(data.get("rules", {}))
        rules.update(overrides or {})
        return cls(rules)

    def judge(self, category: str, reason: str) -> Judgement:
        """The rule for one category."""
        return Judgement(category, self.rules.get(category, "allow"), reason)

    def judge_web(self, name: str, args: dict[str, Any], obs: Observation, allowed: list[str]) -> Judgement | None:
        """The strictest judgement of a browser action, or None when it falls in no category."""
        found = [self.judge(c, why) for c, why in web_categories(name, args, obs, allowed)]
        order = {"deny": 0, "ask": 1, "allow": 2}
        return min(found, key=lambda j: order[j.rule]) if found else None


def _sensitive_fields(obs: Observation) -> list[str]:
    out = []
    for e in obs.elements:
        if e.get("tag") != "input":
            continue
        blob = " ".join(str(e.get(k, "")) for k in ("name", "placeholder", "text"))
        if e.get("type") == "password":
            out.append("a password")
        elif _PAYMENT.search(blob):
            out.append("payment details")
    return sorted(set(out))


def _submits(name: str, args: dict[str, Any], obs: Observation) -> bool:
    if name == "press":
        return str(args.get("key", "")).lower() == "enter"
    if name == "fill_xy":
        return bool(args.get("enter"))
    if name == "click_xy":
        return True  # a click at a point may hit the submit button: judged like one
    if name == "click":
        el = obs.element(str(args.get("bid"))) or {}
        return el.get("tag") == "button" or el.get("type") in ("submit", "image") or el.get("role") == "button"
    return False


def web_categories(name: str, args: dict[str, Any], obs: Observation, allowed: list[str]) -> list[tuple[str, str]]:
    """(category, reason) for each policy category a browser action falls in."""
    found = []
    # With no domains yet (no start URL), the first site the run opens becomes its domain (agent/loop.py).
    if name == "goto" and allowed and not url_allowed(str(args.get("url", "")), allowed):
        found.append(("leave_allowed_domains",
                      f"{args.get('url')} is outside this run's allowed domains ({', '.join(allowed)})"))
    if name == "click":
        el = obs.element(str(args.get("bid"))) or {}
        if el.get("download"):
            found.append(("download", f"the link {el.get('text') or el.get('href')!r} downloads a file"))
    sensitive = _sensitive_fields(obs) if _submits(name, args, obs) else []
    if sensitive:
        found.append(("submit_sensitive", f"this submits a form with {' and '.join(sensitive)} on {obs.url}"))
    return found
