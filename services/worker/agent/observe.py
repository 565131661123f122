"""Observation: stable element ids written into the DOM, page text, accessibility snapshot, screenshot."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

# One evaluate call. Ids live in the DOM (data-bid) so they stay stable across steps; new
# elements get the next number from a page-global counter. MiniWoB-style pages put click
# handlers on plain div/span, so cursor:pointer elements and text leaves count too.
_OBSERVE_JS = r"""
(maxText) => {
  const INTERACTIVE = 'a,button,input,select,textarea,option,label,summary,[role],[onclick],[tabindex],[contenteditable="true"]';
  if (window.__spNextBid === undefined) window.__spNextBid = 1;
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
    if (!el.dataset.bid) el.dataset.bid = String(window.__spNextBid++);
    const tag = el.tagName.toLowerCase();
    let text = (el.innerText || el.textContent || '').trim().replace(/\s+/g, ' ');
    if (!text) text = el.getAttribute('aria-label') || el.getAttribute('title') || el.getAttribute('alt') || '';
    const item = {bid: el.dataset.bid, tag, role: el.getAttribute('role') || '', text: text.slice(0, 100),
      visible, in_viewport: visible && r.bottom > 0 && r.right > 0 && r.top < vh && r.left < vw,
      x: Math.round(r.left + r.width / 2), y: Math.round(r.top + r.height / 2)};
    if (tag === 'input' || tag === 'textarea' || tag === 'select') {
      item.type = el.type || tag; item.value = String(el.value ?? '').slice(0, 100);
      if (el.placeholder) item.placeholder = el.placeholder;
      if (el.name) item.name = el.name;
    }
    if (el.type === 'checkbox' || el.type === 'radio') item.checked = !!el.checked;
    if (tag === 'option') item.selected = !!el.selected;
    if (tag === 'select') item.options = Array.from(el.options).slice(0, 30).map(o => o.text.trim());
    if (tag === 'a' && el.href) item.href = el.getAttribute('href');
    if (el.disabled) item.disabled = true;
    out.push(item);
  };
  document.querySelectorAll(INTERACTIVE).forEach(consider);
  document.querySelectorAll('body *').forEach((el) => {
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
  const text = (document.body ? document.body.innerText : '').replace(/\n{3,}/g, '\n\n').slice(0, maxText);
  return {url: location.href, title: document.title, elements: out, text};
}
"""


@dataclass
class Observation:
    """What the agent sees at one step."""

    url: str
    title: str
    elements: list[dict[str, Any]]
    text: str
    aria: str | None = None
    screenshot: bytes | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def element(self, bid: str) -> dict[str, Any] | None:
        """The element with this id, if it is on the page."""
        return next((e for e in self.elements if e["bid"] == bid), None)

    def summary(self) -> dict[str, Any]:
        """A small dict for the step record and events."""
        return {"url": self.url, "title": self.title, "elements": len(self.elements), "text": self.text[:300]}


def observe(page: Page, *, screenshot: bool = True, aria: bool = True, max_text: int = 4000) -> Observation:
    """Mark and list the page's elements (one JS call), then optionally the ARIA snapshot and a PNG."""
    t0 = time.perf_counter()
    for attempt in range(3):
        try:
            data = page.evaluate(_OBSERVE_JS, max_text)
            break
        except PlaywrightError as exc:
            # The last action started a navigation: wait for the new document, then look again.
            if attempt == 2 or "context was destroyed" not in (exc.message or "") and "navigat" not in (exc.message or ""):
                raise
            page.wait_for_load_state("load", timeout=30_000)
    t1 = time.perf_counter()
    snap = None
    if aria:
        try:
            snap = page.aria_snapshot(mode="ai", timeout=2000)
        except PlaywrightError:
            snap = None
    t2 = time.perf_counter()
    png = page.screenshot(type="png") if screenshot else None
    t3 = time.perf_counter()
    timings = {"elements": _ms(t1 - t0), "aria": _ms(t2 - t1), "screenshot": _ms(t3 - t2)}
    return Observation(data["url"], data["title"], data["elements"], data["text"], snap, png, timings)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def render_elements(elements: list[dict[str, Any]], limit_chars: int) -> str:
    """The element list as the model reads it: `[bid] role "text" (state)`, cut to `limit_chars`."""
    lines, used = [], 0
    for e in elements:
        if not e.get("visible"):
            continue
        role = e["role"] or e.get("type") or e["tag"]
        parts = [f"[{e['bid']}] {role}"]
        if e.get("text"):
            parts.append(f'"{e["text"]}"')
        for key in ("value", "placeholder", "href"):
            if e.get(key):
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
            lines.append(f"... ({len(elements) - len(lines)} more elements cut)")
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)
