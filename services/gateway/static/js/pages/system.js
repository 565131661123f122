// #/system: every service's health, queue depths, the model server's tokens/s, memory, and recent failures.
"use strict";
import { el, api, card, table, every, fmtBytes, fmtDate, fmtPct } from "../core.js";

const REFRESH_MS = 5000;
const BADGE = { ok: "ok", down: "bad", unknown: "bad", "not configured": "" };
const num = (v, digits = 0) => (v == null ? "—" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits }));

function serviceCard(sv) {
  return el("article", { class: `svc svc-${BADGE[sv.status] || "none"}`, "data-testid": `service-${sv.name}`, dataset: { status: sv.status } },
    el("div", { class: "row" },
      el("h3", { text: sv.name }),
      el("span", { class: `badge ${BADGE[sv.status] || ""}`, text: sv.status })),
    el("p", { class: "small muted", text: sv.detail === sv.status ? "" : sv.detail }),
    sv.instances != null ? el("p", { class: "small", text: `${sv.instances} live process${sv.instances === 1 ? "" : "es"}` }) : null);
}

function kv(pairs, attrs = {}) {
  return el("dl", { class: "kv", ...attrs }, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : String(v))]));
}

function queuesView(q) {
  return kv([
    ["Runs waiting on the queue", num(q.runs_waiting)],
    ["Runs queued (database)", num(q.runs_queued)],
    ["Runs in progress", num(q.runs_active)],
    ["Training jobs waiting on the queue", num(q.training_waiting)],
    ["Training jobs queued", num(q.training_queued)],
    ["Training jobs running", num(q.training_running)],
  ]);
}

function modelView(m) {
  if (!m.reachable) return el("p", { class: "muted", text: `Model server: ${m.detail || "unreachable"}.` });
  const rate = m.generation_tokens_per_s == null
    ? el("span", { class: "muted", text: "measuring… (needs two readings)" })
    : el("strong", { class: "big-figure", "data-testid": "tokens-per-s", text: `${num(m.generation_tokens_per_s, 1)} tokens/s` });
  return el("div", {},
    kv([
      ["Generated (last " + (m.window_s == null ? "interval" : `${num(m.window_s, 1)} s`) + ")", rate],
      ["Decode speed per request", m.decode_tokens_per_s == null ? "— (no request yet)" : `${num(m.decode_tokens_per_s, 1)} tokens/s`],
      ["Tokens generated (total)", num(m.generation_tokens_total)],
      ["Prompt tokens (total)", num(m.prompt_tokens_total)],
      ["Requests running / waiting", `${num(m.requests_running)} / ${num(m.requests_waiting)}`],
      ["KV cache in use", m.kv_cache_usage == null ? "—" : fmtPct(m.kv_cache_usage)],
    ]));
}

function memoryView(mem) {
  const used = mem.host_total_bytes != null && mem.host_available_bytes != null ? mem.host_total_bytes - mem.host_available_bytes : null;
  const share = used != null && mem.host_total_bytes ? used / mem.host_total_bytes : null;
  return el("div", {},
    share == null ? null : el("div", { class: "progress mem-bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100,
      "aria-valuenow": Math.round(share * 100), "aria-label": "Host memory in use" },
    el("div", { style: { width: `${(share * 100).toFixed(1)}%` } })),
    kv([
      ["Host memory in use", used == null ? "—" : `${fmtBytes(used)} of ${fmtBytes(mem.host_total_bytes)} (${fmtPct(share)})`],
      ["Host memory available", fmtBytes(mem.host_available_bytes)],
      ["Gateway process (RSS)", fmtBytes(mem.gateway_rss_bytes)],
    ]));
}

function errorsView(errors) {
  if (!errors.length) return el("p", { class: "muted", text: "No failed runs or training jobs." });
  return el("div", { class: "table-wrap" }, table([
    ["When", (e) => fmtDate(e.at)],
    ["What", (e) => el("a", { href: e.kind === "run" ? `#/runs/${e.id}` : `#/training/${e.id}`, text: `${e.kind === "run" ? "Run" : "Training job"} ${e.id.slice(0, 8)}` })],
    ["Task / job", (e) => e.title],
    ["Reason", (e) => el("span", { class: "err", text: e.reason || "(no reason recorded)" })],
  ], errors, { class: "errors-table" }));
}

export function render(root) {
  const status = el("span", { class: "badge", "data-testid": "system-status", text: "checking…" });
  const checked = el("span", { class: "small muted", role: "status" });
  const err = el("p", { class: "err", role: "alert", hidden: true });
  const services = el("div", { class: "svc-grid", "data-testid": "system-services" }, el("p", { class: "muted", text: "Loading…" }));
  const queues = el("div", { "data-testid": "queue-depth" });
  const model = el("div", { "data-testid": "model-throughput" });
  const memory = el("div", { "data-testid": "memory" });
  const errors = el("div", { "data-testid": "recent-errors" });
  root.append(
    el("section", { class: "card" }, el("div", { class: "row" }, el("h2", { text: "System" }), status, el("span", { class: "spacer" }), checked), err,
      el("p", { class: "muted small", text: `Refreshes every ${REFRESH_MS / 1000} s.` })),
    card("Services", services),
    el("div", { class: "grid-even" }, card("Queues", queues), card("Model server", model), card("Memory", memory)),
    card("Recent errors", errors));

  // Redraw a section only when its data changed, so a focused link keeps its focus between refreshes.
  const last = new Map();
  const put = (node, data, view) => {
    const key = JSON.stringify(data);
    if (last.get(node) === key) return;
    last.set(node, key);
    node.replaceChildren(view(data));
  };
  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const s = await api("GET", "/api/v1/system");
      if (!root.isConnected) return;
      err.hidden = true;
      status.textContent = s.status === "ok" ? "all essential services up" : "degraded";
      status.className = `badge ${s.status === "ok" ? "ok" : "warn"}`;
      checked.textContent = `checked ${new Date(s.checked_at).toLocaleTimeString()}`;
      put(services, s.services, (list) => el("div", { class: "svc-list" }, list.map(serviceCard)));
      put(queues, s.queues, queuesView);
      put(model, s.model_server, modelView);
      put(memory, s.memory, memoryView);
      put(errors, s.recent_errors, errorsView);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    } finally {
      busy = false;
    }
  }
  return every(REFRESH_MS, refresh);
}
