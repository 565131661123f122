"""Observation: stable, position-free element ids written into the DOM, the element list, page text, screenshot."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

# One evaluate call. Ids live in the DOM (data-bid) so they stay stable across steps. They are
# random short numbers from a PRNG seeded by the run's salt (not Math.random, which MiniWoB
# reseeds), so an id says nothing about position and differs between episodes; a new salt
# (a new episode) re-numbers the page. MiniWoB-style pages put click handlers on plain div/span,
# so cursor:pointer elements and text leaves count too. `root` limits the view to a task area.
_OBSERVE_JS = r"""
([maxText, salt, rootSel]) => {
  const INTERACTIVE = 'a,button,input,select,textarea,option,label,summary,[role],[onclick],[tabindex],[contenteditable="true"]';
  if (window.__spSalt !== salt) {
    window.__spSalt = salt; window.__spRng = (salt >>> 0) || 1; window.__spUsed = new Set();
    document.querySelectorAll('[data-bid]').forEach((el) => { delete el.dataset.bid; });
  }
  const rng = () => {  // mulberry32
    let t = (window.__spRng = (window.__spRng + 0x6D2B79F5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const newBid = () => {
    const big = window.__spUsed.size > 400;
    for (;;) {
      const b = String(big ? 1000 + Math.floor(rng() * 90000) : 10 + Math.floor(rng() * 990));
      if (!window.__spUsed.has(b)) { window.__spUsed.add(b); return b; }
    }
  };
  const root = (rootSel && document.querySelector(rootSel)) || document.body || document.documentElement;
  if (!root) return null;  // a document caught between navigations has no element yet
  const out = [];
  const seen = new Set();
  const vw = window.innerWidth, vh = window.innerHeight;
  const consider = (el) => {
    if (seen.has(el)) return;
    seen.add(el);
    const style = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    const visible = r.width > 0 && r.height > 0 && style.visibility !== 'hidden' && style.display !== 'none' && style.opacity !== '0';
    if (!visible && !el.matches('input,select,textarea,button,a')) return;
    if (!el.dataset.bid) el.dataset.bid = newBid();
    else window.__spUsed.add(el.dataset.bid);
    const tag = el.tagName.toLowerCase();
    // A select's innerText is all its options (listed separately): name it by its label instead.
    let text = tag === 'select' ? '' : (el.innerText || el.textContent || '').trim().replace(/\s+/g, ' ');
    if (!text && el.labels && el.labels.length) text = Array.from(el.labels).map((l) => l.innerText.trim()).join(' ');
    if (!text) text = el.getAttribute('aria-label') || el.getAttribute('title') || el.getAttribute('alt') || '';
    const item = {bid: el.dataset.bid, tag, role: el.getAttribute('role') || '', text: text.slice(0, 100),
      visible, in_viewport: visible && r.bottom > 0 && r.right > 0 && r.top < vh && r.left < vw,
      x: Math.round(r.left + r.width / 2), y: Math.round(r.top + r.height / 2)};
    if (tag === 'input' || tag === 'textarea' || tag === 'select') {
      // A password's value is never read out of the page: the model and the run's record see only that it is filled.
      item.type = el.type || tag; item.value = el.type === 'password' ? (el.value ? '***' : '') : String(el.value ?? '').slice(0, 100);
      if (el.placeholder) item.placeholder = el.placeholder;
      if (el.name) item.name = el.name;
    }
    if (el.isContentEditable && tag !== 'input' && tag !== 'textarea') item.editable = true;
    if (el.type === 'checkbox' || el.type === 'radio') item.checked = !!el.checked;
    if (tag === 'option') item.selected = !!el.selected;
    if (tag === 'select') item.options = Array.from(el.options).slice(0, 30).map(o => o.text.trim());
    if (tag === 'a' && el.href) item.href = el.getAttribute('href');
    if (tag === 'a' && el.hasAttribute('download')) item.download = true;
    if (el.disabled) item.disabled = true;
    out.push(item);
  };
  root.querySelectorAll(INTERACTIVE).forEach(consider);
  root.querySelectorAll('*').forEach((el) => {
    if (seen.has(el) || el.closest('svg') && el.tagName.toLowerCase() !== 'svg') return;
    const tag = el.tagName.toLowerCase();
    if (tag === 'script' || tag === 'style' || tag === 'br') return;
    const pointer = getComputedStyle(el).cursor === 'pointer' &&
      !(el.parentElement && getComputedStyle(el.parentElement).cursor === 'pointer');
    let ownText = false;
    for (const n of el.childNodes) if (n.nodeType === 3 && n.textContent.trim()) { ownText = true; break; }
    const leaf = ownText && el.children.length === 0 && !(el.parentElement && el.parentElement.closest(INTERACTIVE));
    if (pointer || leaf || tag === 'canvas' || tag === 'svg') consider(el);
  });
  const text = (root.innerText || '').replace(/\n{3,}/g, '\n\n').slice(0, maxText);
  const scroller = document.scrollingElement || document.documentElement;
  return {url: location.href, title: document.title, elements: out, text,
          scrollable: scroller.scrollHeight > vh + 4 || scroller.scrollWidth > vw + 4, history: history.length,
          viewport: [vw, vh]};
}
"""


@dataclass
class Observation:
    """What the agent sees at one step."""

    url: str
    title: str
    elements: list[dict[str, Any]]
    text: str
    screenshot: bytes | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    scrollable: bool = False
    history_length: int = 1
    viewport: tuple[int, int] = (1280, 800)  # CSS pixels: what coordinates refer to

    def element(self, bid: str) -> dict[str, Any] | None:
        """The element with this id, if it is on the page."""
        return next((e for e in self.elements if e["bid"] == bid), None)

    def summary(self) -> dict[str, Any]:
        """A small dict for the step record and events."""
        return {"url": self.url, "title": self.title, "elements": len(self.elements), "text": self.text[:300]}


def bid_salt(*parts: object) -> int:
    """A 31-bit salt for element ids, derived from e.g. the run id or (task, seed)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big") & 0x7FFFFFFF


def observe(page: Page, *, screenshot: bool = True, max_text: int = 4000, salt: int = 1,
            root: str | None = None) -> Observation:
    """Mark and list the page's elements with salted random ids (one JS call), then optionally a PNG."""
    t0 = time.perf_counter()
    for attempt in range(3):
        try:
            data = page.evaluate(_OBSERVE_JS, [max_text, salt, root])
            if data is not None or attempt == 2:
                break
        except PlaywrightError as exc:
            if attempt == 2 or "context was destroyed" not in (exc.message or "") and "navigat" not in (exc.message or ""):
                raise
        # The last action started a navigation: wait for the new document, then look again.
        page.wait_for_load_state("load", timeout=30_000)
    if data is None:
        raise PlaywrightError("the page has no document element after a navigation")
    t1 = time.perf_counter()
    png = page.screenshot(type="png") if screenshot else None
    t2 = time.perf_counter()
    timings = {"elements": _ms(t1 - t0), "screenshot": _ms(t2 - t1)}
    return Observation(data["url"], data["title"], data["elements"], data["text"], png, timings,
                       bool(data.get("scrollable")), int(data.get("history") or 1), tuple(data["viewport"]))


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


_INPUT_ROLES = {"checkbox": "checkbox", "radio": "radio", "submit": "button", "button": "button", "reset": "button",
                "password": "password textbox", "select-one": "list", "select-multiple": "list", "range": "slider"}


def role_of(e: dict[str, Any]) -> str:
    """A short role name a small model knows: textbox, checkbox, button, link, list..."""
    if e["role"]:
        return e["role"]
    if e["tag"] == "select":
        return "list"
    if e["tag"] == "input":
        return _INPUT_ROLES.get(str(e.get("type")), "textbox")
    return {"textarea": "textbox", "a": "link", "select": "list"}.get(e["tag"], e["tag"])


def render_elements(elements: list[dict[str, Any]], limit_chars: int) -> str:
    """The element list as the model reads it: `[bid] role "text" (state)`, cut to `limit_chars`."""
    lines, used = [], 0
    shown = [e for e in elements if e.get("visible") and e["tag"] != "option"]  # options show on their select
    for i, e in enumerate(shown):
        parts = [f"[{e['bid']}] {role_of(e)}"]
        if e.get("text"):
            parts.append(f'"{e["text"]}"')
        for key in ("value", "placeholder", "href"):
            if e.get(key) and not (key == "value" and e.get("type") in ("checkbox", "radio", "submit", "button")):
                parts.append(f"{key}={e[key]!r}")
        if "checked" in e:
            parts.append("checked" if e["checked"] else "unchecked")
        if e.get("options"):
            parts.append("options=" + "|".join(e["options"]))
        if e.get("disabled"):
            parts.append("disabled")
        if not e.get("in_viewport"):
            parts.append("(off-screen)")
        line = " ".join(parts)
        if used + len(line) + 1 > limit_chars:
            lines.append(f"... ({len(shown) - i} more elements cut)")
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)
