// The run page's live browser view: screencast frames, the agent's next action highlighted, and take control.
"use strict";
import { api, el, showError } from "./core.js";

// Frame lag (ms from Chromium compositing a frame to this page showing it), for the page and for tests.
export const lag = (window.__sparkpilotLive = window.__sparkpilotLive || { latencies: [] });

function p50(xs) { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : null; }

/** The live view of run `runId`; feed it the socket's frames with onFrame(msg), the control events with setControl. */
export function liveView(runId) {
  let frameW = 1280, frameH = 800, mode = "agent", hlTimer = null, lastFrameAt = 0;
  const img = el("img", { class: "live-img", alt: "the run's browser, live", dataset: { testid: "live-frame" } });
  const hl = el("div", { class: "live-hl", hidden: true, "aria-hidden": "true" });
  const waiting = el("p", { class: "live-wait muted", text: "Waiting for the first frame…" });
  const screen = el("div", { class: "live-screen", tabindex: "0", role: "application",
    "aria-label": "Live browser. With control taken, click to click in the page; arrow keys scroll." }, waiting, img, hl);
  const who = el("span", { class: "badge", dataset: { testid: "control-mode" }, text: "agent has control" });
  const stats = el("span", { class: "muted small", dataset: { testid: "live-lag" } });
  const take = el("button", { type: "button", dataset: { testid: "take-control" }, text: "Take control" });
  const back = el("button", { type: "button", class: "secondary", dataset: { testid: "hand-back" }, text: "Hand back to agent", hidden: true });
  const text = el("input", { type: "text", placeholder: "Type into the focused field", "aria-label": "Text to type", dataset: { testid: "human-text" } });
  const typeBtn = el("button", { type: "submit", text: "Type" });
  const keys = ["Enter", "Tab", "Escape", "Backspace"].map((k) =>
    el("button", { type: "button", class: "secondary", text: k, on: { click: () => act({ type: "press", key: k }) } }));
  const scroll = [["Scroll up", -300], ["Scroll down", 300]].map(([label, dy]) =>
    el("button", { type: "button", class: "secondary", text: label, on: { click: () => act({ type: "scroll", dy }) } }));
  const tools = el("form", { class: "live-tools buttons", hidden: true, on: { submit: (e) => {
    e.preventDefault();
    if (text.value) act({ type: "type", text: text.value }).then(() => { text.value = ""; });
  } } }, text, typeBtn, ...keys, ...scroll);
  const node = el("section", { class: "card live", dataset: { testid: "live-view" } },
    el("div", { class: "row" }, el("h2", { text: "Live browser" }), who, stats, el("span", { class: "spacer" }), take, back),
    screen, tools);

  async function act(body) {
    try { await api("POST", `/api/v1/runs/${runId}/control/actions`, body); }
    catch (e) { showError(e.message); }
  }
  async function request(m) {
    try { setControl((await api("POST", `/api/v1/runs/${runId}/control`, { mode: m })).mode, m === "human" ? "pending" : ""); }
    catch (e) { showError(e.message); }
  }
  take.addEventListener("click", () => request("human"));
  back.addEventListener("click", () => request("agent"));
  img.addEventListener("click", (e) => {
    if (mode !== "human") return;
    const r = img.getBoundingClientRect();
    const x = Math.round((e.clientX - r.left) * frameW / r.width), y = Math.round((e.clientY - r.top) * frameH / r.height);
    act({ type: "click", x, y });
  });
  screen.addEventListener("keydown", (e) => {
    if (mode !== "human" || !["ArrowUp", "ArrowDown"].includes(e.key)) return;
    e.preventDefault();
    act({ type: "scroll", dy: e.key === "ArrowUp" ? -200 : 200 });
  });

  /** Who has the browser: 'human' or 'agent' ('pending': asked, the agent has not paused yet). */
  function setControl(m, note = "") {
    mode = m;
    const human = m === "human";
    who.textContent = human ? (note === "pending" ? "taking control… (the agent pauses after its step)" : "you have control") : "agent has control";
    who.className = `badge ${human ? "warn" : ""}`;
    take.hidden = human;
    back.hidden = !human;
    tools.hidden = !human;
    screen.classList.toggle("human", human);
  }

  function onFrame(msg) {
    if (msg.kind === "frame") {
      frameW = msg.w || frameW; frameH = msg.h || frameH;
      const at = msg.ts * 1000;
      if (at < lastFrameAt) return; // an older frame after a newer one
      lastFrameAt = at;
      img.src = `data:image/jpeg;base64,${msg.data}`;
      img.decode().then(() => {
        waiting.hidden = true;
        lag.latencies.push(Date.now() - at);
        if (lag.latencies.length > 2000) lag.latencies.shift();
        stats.textContent = `frame lag p50 ${Math.round(p50(lag.latencies.slice(-50)))} ms`;
      }).catch(() => {});
    } else if (msg.kind === "action") {
      if (msg.x == null) return;
      hl.hidden = false;
      hl.style.left = `${(msg.x / frameW) * 100}%`;
      hl.style.top = `${(msg.y / frameH) * 100}%`;
      hl.dataset.label = msg.label || msg.name;
      hl.className = `live-hl ${msg.actor === "human" ? "human" : ""}`;
      clearTimeout(hlTimer);
      hlTimer = setTimeout(() => { hl.hidden = true; }, 2000);
    }
  }

  return {
    node, onFrame, setControl,
    async refresh() {
      try { setControl((await api("GET", `/api/v1/runs/${runId}/control`)).mode); } catch (e) { showError(e.message); }
    },
    setRunning(running) { take.disabled = !running; if (!running) { setControl("agent"); take.hidden = true; } },
  };
}
