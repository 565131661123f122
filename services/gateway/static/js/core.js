// Shared by every page: the API client, DOM helpers, formatting, live sockets. No build step, no framework.
"use strict";

export const $ = (id) => document.getElementById(id);
export const state = { token: localStorage.getItem("sparkpilot.token") || "", me: null };
export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

/** el("div", {class: "x", text: "hi", on: {click: f}, dataset: {id: 1}}, child, …): one element. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k === "style" && typeof v === "object") Object.assign(e.style, v);
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

export function showError(msg) { $("error").textContent = msg; $("error").hidden = false; }
export function clearError() { $("error").textContent = ""; $("error").hidden = true; }

export class ApiError extends Error {
  constructor(status, message, code) { super(message); this.status = status; this.code = code; }
}

/** Call the REST API with the signed-in token; throws ApiError with the envelope's message. */
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  const init = { method, headers };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const res = await fetch(path, init);
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = (data && data.error) || {};
    const msg = res.status === 401
      ? "Unauthorized (401): the API token is missing or invalid. Sign in with a valid token above."
      : err.message || `${method} ${path} failed: HTTP ${res.status}`;
    throw new ApiError(res.status, msg, err.code);
  }
  return data;
}

/** GET a binary resource (screenshot, file) with the token; an object URL the caller revokes. */
export async function apiBlobUrl(path) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!res.ok) throw new ApiError(res.status, `${path}: HTTP ${res.status}`);
  return URL.createObjectURL(await res.blob());
}

/** Download a resource with the token as a file named `name`. */
export async function download(path, name) {
  const url = await apiBlobUrl(path);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * A resumable WebSocket stream of events (/api/v1/…/ws). The token travels as a subprotocol offer,
 * never in the URL. onEvent(ev) gets each event once, in order; onFrame(msg) gets live frames.
 */
export function openStream(path, { onEvent, onFrame, onState, frames = false }) {
  let lastId = 0, ws = null, done = false, stopped = false, retry = null;
  const connect = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const q = `after=${lastId}${frames ? "&frames=1" : ""}`;
    ws = new WebSocket(`${proto}://${location.host}${path}?${q}`, ["sparkpilot", `bearer.${state.token}`]);
    onState && onState("connecting");
    ws.onopen = () => onState && onState("live");
    ws.onmessage = (msg) => {
      const data = JSON.parse(msg.data);
      if (data.kind) return onFrame && onFrame(data); // live frames and overlays carry no event id
      if (data.id <= lastId) return;
      lastId = data.id;
      onEvent(data);
    };
    ws.onclose = (e) => {
      ws = null;
      if (stopped) return;
      if (e.code === 4401) { onState && onState("closed"); return showError("Unauthorized (4401): the API token is not valid for this stream."); }
      if (e.code === 4404) { onState && onState("closed"); return showError(`Not found (4404): ${e.reason}`); }
      if (e.code === 1000) { done = true; onState && onState("done"); return; }
      onState && onState("reconnecting");
      retry = setTimeout(connect, 1000);
    };
  };
  connect();
  return {
    close() { stopped = true; clearTimeout(retry); if (ws) ws.close(); },
    get done() { return done; },
  };
}

// ---------- formatting ----------
export function fmtTime(ts) { return ts ? new Date(ts).toLocaleTimeString() : ""; }
export function fmtDate(ts) { return ts ? new Date(ts).toLocaleString() : ""; }
export function fmtMs(ms) {
  if (ms == null) return "—";
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)} s` : `${Math.round(ms)} ms`;
}
export function fmtPct(x) { return x == null ? "—" : `${(x * 100).toFixed(0)}%`; }
export function fmtBytes(n) {
  if (n == null) return "—";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
/** An action as a person reads it: click(bid "57"), fill(…). Handles {name, args} and flat {name, …}. */
export function fmtAction(a) {
  if (!a || typeof a !== "object" || !a.name) return "—";
  const args = a.args && typeof a.args === "object" ? a.args : Object.fromEntries(Object.entries(a).filter(([k]) => !["name", "actor", "result", "point"].includes(k)));
  return `${a.name}(${Object.entries(args).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")})`;
}
export function statusBadge(status) { return el("span", { class: `status ${status}`, text: status }); }

/** A countdown to `deadline` (ISO) in `node`, updated every second until it ends or the node leaves the page. */
export function countdown(node, deadline) {
  const tick = () => {
    if (!node.isConnected && node.dataset.started) return clearInterval(t);
    node.dataset.started = "1";
    const s = Math.max(0, Math.round((new Date(deadline) - Date.now()) / 1000));
    node.textContent = s ? `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")} left` : "time is up";
  };
  const t = setInterval(tick, 1000);
  tick();
}

/** A <table> from rows: columns = [[header, row => cell (text or Node)], …]. */
export function table(columns, rows, attrs = {}) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, columns.map(([h]) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows.map((r) => el("tr", {}, columns.map(([, f]) => {
      const v = f(r);
      return el("td", {}, v instanceof Node ? v : (v == null ? "—" : String(v)));
    })))));
}

/** A card: a titled section. */
export function card(title, ...children) {
  return el("section", { class: "card" }, title ? el("h2", { text: title }) : null, ...children);
}

/** Run `fn` now and every `ms` until the returned stop() (pages return it from render as their cleanup). */
export function every(ms, fn) {
  fn();
  const t = setInterval(fn, ms);
  return () => clearInterval(t);
}

/** Send `blob` (a File) as the raw request body, as the streaming upload endpoints expect; errors as api(). */
export async function apiUpload(method, path, blob) {
  const res = await fetch(path, { method, headers: { Authorization: `Bearer ${state.token}`,
    "Content-Type": blob.type || "application/octet-stream" }, body: blob });
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.message || `${method} ${path} failed: HTTP ${res.status}`, err.code);
  }
  return data;
}

/** Give each body cell of a table() its column name (data-label), so CSS can show rows as cards on a phone. */
export function labelCells(t) {
  const heads = [...t.querySelectorAll("thead th")].map((th) => th.textContent);
  for (const tr of t.querySelectorAll("tbody tr")) [...tr.children].forEach((td, i) => { td.dataset.label = heads[i] || ""; });
  return t;
}
