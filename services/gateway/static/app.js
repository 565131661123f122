"use strict";
// Sparkpilot dashboard: vanilla JS, no build step.
const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(["run.succeeded", "run.failed", "run.cancelled"]);
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const state = { token: localStorage.getItem("sparkpilot.token") || "", run: null, ws: null, lastId: 0, done: false, blobs: [], retry: null };

// ---------- helpers ----------
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}
function showError(msg) { $("error").textContent = msg; $("error").hidden = false; }
function clearError() { $("error").textContent = ""; $("error").hidden = true; }
function fmtTime(ts) { return ts ? new Date(ts).toLocaleTimeString() : ""; }
function fmtAction(a) {
  if (!a || typeof a !== "object") return String(a ?? "");
  const { name, ...args } = a;
  return `${name || "action"}(${Object.values(args).map((v) => JSON.stringify(v)).join(", ")})`;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const msg = res.status === 401
      ? "Unauthorized (401): the API token is missing or invalid. Enter a valid token above."
      : (data && data.error && data.error.message) || `${method} ${path} failed: HTTP ${res.status}`;
    throw new ApiError(res.status, msg);
  }
  return data;
}

// ---------- health ----------
async function refreshHealth() {
  const badge = $("health");
  try {
    const res = await fetch("/health");
    const h = await res.json();
    const bad = Object.entries(h.checks || {})
      .filter(([, v]) => v !== "ok" && v !== "not configured")
      .map(([k]) => k);
    badge.textContent = h.status === "ok" ? "healthy" : `degraded${bad.length ? ": " + bad.join(", ") : ""}`;
    badge.className = `badge ${h.status === "ok" ? "ok" : "warn"}`;
    badge.title = JSON.stringify(h.checks || {}, null, 2);
  } catch {
    badge.textContent = "unreachable";
    badge.className = "badge bad";
  }
}

// ---------- run list ----------
async function refreshRuns() {
  if (!state.token) return $("runs").replaceChildren(el("li", "muted", "Enter an API token to see runs."));
  const status = $("status-filter").value;
  try {
    const page = await api("GET", `/api/v1/runs?limit=50${status ? "&status=" + status : ""}`);
    const list = $("runs");
    list.replaceChildren(...page.items.map(runRow));
    if (!page.items.length) list.append(el("li", "muted", "No runs yet."));
    const cur = state.run && page.items.find((r) => r.id === state.run.id);
    if (cur && !FINISHED.has(state.run.status)) showRun(cur); // never let a stale list undo a final status
  } catch (e) { showError(e.message); }
}
function runRow(run) {
  const li = el("li", state.run && state.run.id === run.id ? "selected" : "");
  li.dataset.runId = run.id;
  li.dataset.testid = "run-row";
  li.append(el("span", `status ${run.status}`, run.status), el("span", "task", run.task),
    el("span", "muted", fmtTime(run.created_at)));
  li.addEventListener("click", () => selectRun(run));
  return li;
}

// ---------- run detail + live events ----------
function showRun(run) {
  state.run = run;
  $("placeholder").hidden = true;
  $("run-view").hidden = false;
  $("run-id").textContent = run.id;
  $("run-status").textContent = run.status;
  $("run-status").className = `status ${run.status}`;
  $("run-task").textContent = run.task + (run.start_url ? ` — ${run.start_url}` : "");
  const finished = FINISHED.has(run.status);
  $("run-outcome").hidden = !finished;
  $("run-reason").textContent = run.reason || "—";
  $("run-result").textContent = run.result || "—";
  $("cancel-run").disabled = finished || run.cancel_requested;
  for (const row of document.querySelectorAll("#runs li[data-run-id]")) {
    const me = row.dataset.runId === run.id;
    row.classList.toggle("selected", me);
    if (me) Object.assign(row.firstChild, { textContent: run.status, className: `status ${run.status}` });
  }
}
function closeSocket() {
  clearTimeout(state.retry);
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  state.blobs.forEach(URL.revokeObjectURL);
  state.blobs = [];
}
function selectRun(run) {
  if (state.run && state.run.id === run.id && (state.ws || state.done)) return;
  closeSocket();
  state.lastId = 0;
  state.done = false;
  $("events").replaceChildren();
  showRun(run);
  connect(run.id);
}
function connect(id) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const url = `${proto}://${location.host}/api/v1/runs/${id}/ws?after=${state.lastId}`;
  // The token travels as a subprotocol offer, never in the URL (URLs land in access logs).
  const ws = new WebSocket(url, ["sparkpilot", `bearer.${state.token}`]);
  state.ws = ws;
  $("live").textContent = "connecting…";
  ws.onopen = () => { $("live").textContent = "● live"; };
  ws.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    if (ev.id <= state.lastId) return; // never show an event twice
    state.lastId = ev.id;
    renderEvent(ev);
    if (TERMINAL.has(ev.type)) state.done = true;
    if (ev.type.startsWith("run.") && ev.type !== "run.message") reloadRun(id);
  };
  ws.onclose = (e) => {
    if (state.ws !== ws) return;
    state.ws = null;
    $("live").textContent = "";
    if (e.code === 4401) return showError("Unauthorized (4401): the API token is invalid for this run.");
    if (e.code === 4404) return showError(`Run ${id} not found (4404).`);
    if (e.code === 1000 || state.done) { state.done = true; return reloadRun(id); }
    $("live").textContent = "reconnecting…";
    state.retry = setTimeout(() => { if (state.run && state.run.id === id) connect(id); }, 1000);
  };
}
async function reloadRun(id) {
  try {
    const run = await api("GET", `/api/v1/runs/${id}`);
    if (state.run && state.run.id === id) showRun(run);
  } catch (e) { showError(e.message); }
}
function renderEvent(ev) {
  const li = el("li", `event ${ev.type.replace(".", "-")}`);
  li.dataset.eventId = ev.id;
  li.dataset.type = ev.type;
  const head = el("div", "event-head");
  head.append(el("span", "muted", fmtTime(ev.ts)), el("strong", null, ev.type));
  li.append(head);
  const p = ev.payload || {};
  if (ev.type === "step.started") {
    li.append(el("div", null, `Step ${p.index}: ${fmtAction(p.action)}`));
  } else if (ev.type === "step.completed") {
    const obs = p.observation || {};
    li.append(el("div", null, `Step ${p.index}: ${fmtAction(p.action)}`));
    if (obs.url || obs.title) li.append(el("div", "muted", `${obs.title || ""} ${obs.url ? "<" + obs.url + ">" : ""}`));
    const t = Object.entries(p.timings_ms || {}).map(([k, v]) => `${k} ${v} ms`).join(" · ");
    if (t) li.append(el("div", "muted small", t));
    if (p.error) li.append(el("div", "err", p.error));
    if (p.has_screenshot) li.append(screenshot(ev.run_id, p.index));
  } else if (ev.type === "run.message") {
    li.append(el("div", null, p.text || JSON.stringify(p)));
  } else if (TERMINAL.has(ev.type)) {
    if (p.reason) li.append(el("div", null, `Reason: ${p.reason}`));
    if (p.result) li.append(el("div", null, `Result: ${p.result}`));
  } else if (Object.keys(p).length) {
    li.append(el("div", "muted small", JSON.stringify(p)));
  }
  $("events").append(li);
}
function screenshot(runId, index) {
  const img = el("img", "step-shot");
  img.alt = `step ${index} screenshot`;
  img.dataset.testid = "step-shot";
  fetch(`/api/v1/runs/${runId}/steps/${index}/screenshot`, { headers: { Authorization: `Bearer ${state.token}` } })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(`screenshot ${index}: HTTP ${r.status}`))))
    .then((blob) => { const u = URL.createObjectURL(blob); state.blobs.push(u); img.src = u; })
    .catch((e) => { img.replaceWith(el("div", "err", e.message)); });
  return img;
}

// ---------- actions ----------
$("token").value = state.token;
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("token").value.trim();
  localStorage.setItem("sparkpilot.token", state.token);
  clearError();
  refreshRuns();
});
$("run-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = { task: $("task").value.trim(), start_url: $("start-url").value.trim() || null,
    max_steps: $("max-steps").value === "" ? 30 : Number($("max-steps").value) };
  $("submit-run").disabled = true;
  try {
    const run = await api("POST", "/api/v1/runs", body);
    clearError();
    selectRun(run);
    refreshRuns();
  } catch (err) { showError(err.message); } finally { $("submit-run").disabled = false; }
});
$("cancel-run").addEventListener("click", async () => {
  if (!state.run) return;
  try {
    showRun(await api("POST", `/api/v1/runs/${state.run.id}/cancel`));
  } catch (err) {
    showError(err.status === 409 ? "This run has already finished; it cannot be cancelled." : err.message);
    reloadRun(state.run.id);
  }
});
$("status-filter").addEventListener("change", refreshRuns);

refreshHealth();
refreshRuns();
setInterval(refreshHealth, 5000);
setInterval(refreshRuns, 3000);
