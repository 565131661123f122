// #/benchmarks: saved benchmark results (scripts/benchmark.sh): MiniWoB++ success per task, success across
// adapter versions, and the harness's own overhead per step.
"use strict";
import { el, api, card, table, fmtDate, fmtMs, fmtPct } from "../core.js";
import { barChart, histogram, lineChart } from "../charts.js";

const ci = (pair) => (Array.isArray(pair) ? `${fmtPct(pair[0])}–${fmtPct(pair[1])}` : "—");

/** "smollm2@v3" → ["smollm2", 3]; the base model (no @vN) sorts first. */
function versionKey(label) {
  const m = /^(.*)@v(\d+)$/.exec(label);
  return m ? [1, m[1], Number(m[2])] : [0, label, 0];
}
function byVersion(a, b) {
  const [ka, kb] = [versionKey(a), versionKey(b)];
  return ka[0] - kb[0] || ka[1].localeCompare(kb[1]) || ka[2] - kb[2];
}

function resultLabel(r) {
  const what = r.suite === "learning" ? "learning loop" : `MiniWoB++${r.policy === "replay" ? " (replay)" : ""}`;
  return `${fmtDate(r.created_at)} — ${what} — ${r.model || "?"} — ${fmtPct(r.success_rate)}`;
}

/** Series for the version line: the latest agent-score MiniWoB++ result per model, and each learning run's rounds. */
function versionSeries(results) {
  const series = [];
  const latest = new Map();
  for (const r of results) { // newest first: the first seen per model is its latest
    if (r.suite === "miniwob" && r.policy !== "replay" && r.model && !latest.has(r.model)) latest.set(r.model, r);
  }
  if (latest.size) {
    series.push({
      name: "MiniWoB++",
      points: [...latest.values()].map((r) => ({ x: r.model, y: r.success_rate, lo: r.success_ci95[0], hi: r.success_ci95[1] })),
    });
  }
  for (const r of results.filter((x) => x.suite === "learning" && x.rounds.length).slice(0, 3)) {
    // One point per version: a round that kept the serving model re-measured it, so its figure replaces the earlier one.
    const perModel = new Map();
    for (const rd of r.rounds) perModel.set(rd.model || "base model", rd);
    series.push({
      name: `learning loop, ${new Date(r.created_at).toLocaleDateString()}`,
      points: [...perModel.entries()].map(([model, rd]) => ({ x: model, y: rd.success_rate, lo: rd.ci95[0], hi: rd.ci95[1] })),
    });
  }
  const order = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort(byVersion);
  for (const s of series) s.points.sort((a, b) => order.indexOf(a.x) - order.indexOf(b.x));
  return { series, order };
}

function emptyState(directory) {
  return card("No saved benchmark results",
    el("p", { text: `Nothing to show yet: the folder ${directory} holds no miniwob-*.json or learning-*.json result.` }),
    el("p", {}, "Produce one with the stack running: ", el("code", { text: "scripts/benchmark.sh miniwob" }),
      " (MiniWoB++ episodes through the gateway and worker; add ", el("code", { text: "--model name@vN" }),
      " to measure an adapter version), or ", el("code", { text: "scripts/benchmark.sh learning" }),
      " for the learning loop's rounds. Then reload this page."));
}

function summary(r) {
  const items = [
    ["Suite", r.suite === "learning" ? "learning loop (sparkpilot learn)" : "MiniWoB++ (sparkpilot bench miniwob)"],
    ["Model / adapter", r.model || "—"],
    ["Created", fmtDate(r.created_at)],
    ["Episodes", `${r.successes} of ${r.episodes} succeeded`],
    ["Success", `${fmtPct(r.success_rate)} (95% interval ${ci(r.success_ci95)})`],
  ];
  if (r.suite === "miniwob") items.push(["Harness overhead per step", `p50 ${fmtMs(r.harness_p50_ms)} · p95 ${fmtMs(r.harness_p95_ms)}`]);
  const dl = el("dl", { class: "kv", "data-testid": "bench-summary" }, items.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  const note = r.policy === "replay"
    ? el("p", { class: "badge warn", text: "Replay policy: this measures the harness's overhead only, not the agent's score." })
    : null;
  return [dl, note];
}

function taskCard(r) {
  const bars = r.tasks.map((t) => ({ label: t.task, value: t.success_rate, lo: t.ci95[0], hi: t.ci95[1] }));
  const title = r.suite === "learning" ? "Success per task (last round)" : "MiniWoB++ success per task";
  const chart = bars.length ? barChart(bars, { yLabel: "success rate", yMax: 1, height: 240 }) : el("p", { class: "muted", text: "No per-task rows in this result." });
  const rows = table([
    ["Task", (t) => t.task], ["Episodes", (t) => t.episodes], ["Success", (t) => fmtPct(t.success_rate)],
    ["95% interval", (t) => ci(t.ci95)], ["Mean steps", (t) => t.mean_steps],
  ], r.tasks);
  return el("section", { class: "card", "data-testid": "task-bars" },
    el("h2", { text: title }),
    el("p", { class: "muted small", text: "Bars: success rate; whiskers: Wilson 95% interval." }),
    chart,
    el("details", { class: "bench-table" }, el("summary", { text: "Per-task figures as a table" }), el("div", { class: "table-wrap" }, rows)));
}

function versionCard(results) {
  const { series, order } = versionSeries(results);
  const body = series.length
    ? lineChart(series, { xLabel: "model / adapter version", yLabel: "success rate", yMin: 0, yMax: 1, height: 240, xCategories: order })
    : el("p", { class: "muted", text: "No agent-score results yet (replay results measure the harness, not success)." });
  return el("section", { class: "card", "data-testid": "version-line" },
    el("h2", { text: "Success across adapter versions" }),
    el("p", { class: "muted small", text: "Points: success rate; band and whiskers: Wilson 95% interval. MiniWoB++: the latest saved result per version; learning: each round's held-out evaluation." }),
    body);
}

function harnessCard(r) {
  const h = r.harness_histogram_ms;
  let body;
  if (r.suite !== "miniwob") body = el("p", { class: "muted", text: "Learning results carry no per-step harness timings; pick a MiniWoB++ result." });
  else if (!h || !h.counts.length) body = el("p", { class: "muted", text: "This result was saved without a harness histogram (older format); p50 and p95 are above." });
  else body = histogram(h.edges, h.counts, { xLabel: "ms per step, model time excluded", height: 200 });
  return el("section", { class: "card", "data-testid": "harness-hist" },
    el("h2", { text: "Harness overhead per step" }),
    el("p", { class: "bench-pcts", "data-testid": "harness-pcts" },
      el("span", {}, "p50 ", el("strong", { text: fmtMs(r.harness_p50_ms) })),
      el("span", {}, "p95 ", el("strong", { text: fmtMs(r.harness_p95_ms) }))),
    body);
}

function errorsCard(bad) {
  if (!bad.length) return null;
  return el("section", { class: "card", "data-testid": "bench-errors" },
    el("h2", { text: `Files that could not be read (${bad.length})` }),
    el("ul", { class: "bench-errors" }, bad.map((r) => el("li", {}, el("code", { text: r.name }), ": ", el("span", { class: "err", text: r.error })))));
}

export function render(root) {
  const head = el("section", { class: "card" }, el("h2", { text: "Benchmarks" }), el("p", { class: "muted", text: "Loading saved results…" }));
  const body = el("div", { class: "stack" });
  root.append(head, body);
  let stopped = false;

  async function load() {
    let data;
    try {
      data = await api("GET", "/api/v1/benchmarks");
    } catch (e) {
      if (!stopped) head.replaceChildren(el("h2", { text: "Benchmarks" }), el("p", { class: "err", role: "alert", text: e.message }));
      return;
    }
    if (stopped) return;
    const good = data.results.filter((r) => !r.error);
    const bad = data.results.filter((r) => r.error);
    const reload = el("button", { type: "button", class: "secondary", text: "Reload", on: { click: load } });
    if (!good.length) {
      head.replaceChildren(el("div", { class: "row" }, el("h2", { text: "Benchmarks" }), el("span", { class: "spacer" }), reload));
      body.replaceChildren(el("div", { "data-testid": "bench-empty" }, emptyState(data.directory)), errorsCard(bad) || "");
      return;
    }
    const select = el("select", { id: "bench-select", "data-testid": "bench-select" },
      good.map((r, i) => el("option", { value: String(i), text: resultLabel(r) })));
    const detail = el("div", { class: "stack" });
    const show = () => {
      const r = good[Number(select.value)];
      detail.replaceChildren(
        el("section", { class: "card" }, el("h2", { text: r.name }), ...summary(r)),
        el("div", { class: "grid-even bench-grid" }, taskCard(r), harnessCard(r)));
    };
    // Start on the newest agent-score MiniWoB++ result (the page's main subject), else the newest result.
    select.value = String(Math.max(0, good.findIndex((r) => r.suite === "miniwob" && r.policy !== "replay")));
    select.addEventListener("change", show);
    head.replaceChildren(
      el("div", { class: "row" }, el("h2", { text: "Benchmarks" }), el("span", { class: "spacer" }), reload),
      el("div", { class: "row bench-pick" }, el("label", { for: "bench-select", text: "Saved result" }), select),
      el("p", { class: "muted small", text: `${good.length} result${good.length === 1 ? "" : "s"} in ${data.directory} (scripts/benchmark.sh miniwob | learning).` }));
    body.replaceChildren(detail, versionCard(good), errorsCard(bad) || "");
    show();
  }

  load();
  return () => { stopped = true; };
}
