// #/training (jobs list + start form) and #/training/ID (phases, live loss curve, eval table, the gate's verdict).
"use strict";
import { el, api, card, table, every, openStream, download, fmtDate, fmtMs, fmtPct, statusBadge, labelCells, FINISHED } from "../core.js";
import { lineChart } from "../charts.js";

const PHASES = ["prepare", "train", "evaluate", "publish"];
const PAGE = 20;

export function render(root, jobId) {
  return jobId ? renderJob(root, jobId) : renderList(root);
}

/** 0..1: finished phases plus the running phase's own share (train steps, eval episodes). */
function fraction(job) {
  if (job.status === "succeeded") return 1;
  const p = job.progress || {};
  let part = 0;
  if (job.phase === "train" && p.total) part = Math.min(1, (p.step || 0) / p.total);
  else if (job.phase === "evaluate" && p.episodes) part = 0.5 * Math.min(1, (p.episodes_done || 0) / p.episodes);
  const done = (job.done_phases || []).length;
  return Math.min(1, (done + (PHASES.includes(job.phase) && !job.done_phases.includes(job.phase) ? part : 0)) / PHASES.length);
}

function progressBar(value, label, testid) {
  return el("div", { class: "progress", role: "progressbar", "aria-label": label, "aria-valuemin": 0, "aria-valuemax": 100,
    "aria-valuenow": Math.round(value * 100), "data-testid": testid },
  el("div", { style: { width: `${(value * 100).toFixed(1)}%` } }));
}

function phaseSummary(job) {
  const p = job.progress || {};
  if (FINISHED.has(job.status)) return `${job.done_phases.length}/${PHASES.length} phases`;
  if (job.status === "queued") return "waiting for the trainer";
  if (job.phase === "train" && p.total) return `train: step ${p.step || 0}/${p.total}${p.loss != null ? `, loss ${p.loss.toFixed(3)}` : ""}`;
  if (job.phase === "evaluate" && p.episodes) return `evaluate ${p.model || ""}: ${p.episodes_done || 0}/${p.episodes} episodes`;
  return job.phase || "starting";
}

// ---------------------------------------------------------------- list

function renderList(root) {
  let offset = 0;
  let shown = "";
  const box = el("div", { class: "table-wrap" }, el("p", { class: "muted", text: "Loading jobs…" }));
  const pager = el("div", { class: "pager" });
  const err = el("p", { class: "err", role: "alert", hidden: true });

  async function load() {
    let page;
    try {
      page = await api("GET", `/api/v1/training/jobs?limit=${PAGE}&offset=${offset}`);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
      return;
    }
    err.hidden = true;
    const key = JSON.stringify(page);
    if (key === shown) return; // unchanged: keep the DOM (and keyboard focus) as it is
    shown = key;
    const t = page.items.length ? table([
      ["Job", (j) => el("a", { href: `#/training/${j.id}`, text: j.name, "data-testid": "job-link" })],
      ["Status", (j) => statusBadge(j.status)],
      ["Progress", (j) => el("div", { class: "job-prog" }, progressBar(fraction(j), `${j.name} progress`, "job-row-progress"),
        el("div", { class: "muted small", text: phaseSummary(j) }))],
      ["Method", (j) => j.method],
      ["Adapter", (j) => j.adapter],
      ["Created", (j) => fmtDate(j.created_at)],
      ["Outcome", (j) => j.reason ? el("span", { class: "small", text: j.reason }) : null],
    ], page.items, { "data-testid": "jobs-table", class: "jobs-table stack-narrow" }) : el("p", { class: "muted", "data-testid": "jobs-empty", text: "No training jobs yet." });
    labelCells(t);
    page.items.forEach((j, i) => {
      const tr = t.querySelectorAll("tbody tr")[i];
      if (tr) Object.assign(tr.dataset, { testid: "job-row", jobId: j.id, status: j.status });
    });
    box.replaceChildren(t);
    const last = Math.min(page.total, offset + page.items.length);
    pager.replaceChildren(
      el("button", { type: "button", class: "secondary", text: "Newer", disabled: offset === 0,
        on: { click: () => { offset = Math.max(0, offset - PAGE); load(); } } }),
      el("span", { class: "muted small", "data-testid": "jobs-count", text: page.total ? `${offset + 1}–${last} of ${page.total}` : "" }),
      el("button", { type: "button", class: "secondary", text: "Older", disabled: last >= page.total,
        on: { click: () => { offset += PAGE; load(); } } }));
  }

  root.append(el("div", { class: "training-grid" },
    card("Training jobs", el("p", { class: "muted small", text: "Newest first. A job runs prepare → train → evaluate → publish (the eval gate)." }),
      err, box, pager),
    card("Start a training job", startJobForm((job) => { location.hash = `#/training/${job.id}`; }))));
  return every(3000, load);
}

// ---------------------------------------------------------------- one job

function renderJob(root, jobId) {
  let job = null;
  let stream = null;
  let drawQueued = false;
  const losses = new Map(); // step → loss, from the stored curve and live progress events
  const head = el("div", { class: "row" }, el("h2", { text: "Training job" }));
  const phases = el("ol", { class: "phases", "data-testid": "job-phases" });
  const overall = el("div", { "data-testid": "job-progress-box" });
  const live = el("p", { class: "small", "data-testid": "job-live", "aria-live": "polite" });
  const chart = el("div", { class: "loss-chart", "data-testid": "loss-chart", dataset: { points: "0" } },
    el("p", { class: "muted", text: "No loss yet: the curve appears as the train phase runs." }));
  const lossNote = el("p", { class: "muted small", "data-testid": "loss-note" });
  const evalBox = el("div", { class: "table-wrap", "data-testid": "eval-box" }, el("p", { class: "muted", text: "Not evaluated yet." }));
  const gate = el("div", { "data-testid": "gate-decision" }, el("p", { class: "muted", text: "The gate decides after the evaluation." }));
  const details = el("div", {});
  const prepBox = el("div", {});
  const msg = el("p", { class: "small", role: "status", "data-testid": "job-msg" });
  const err = el("p", { class: "err", role: "alert", "data-testid": "job-error", hidden: true });
  const confirmBar = el("div", { class: "confirm-bar", hidden: true, "data-testid": "confirm-cancel" });
  const streamState = el("span", { class: "badge", "data-testid": "stream-state", title: "live event stream", text: "connecting" });

  const drawChart = () => {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => {
      drawQueued = false;
      const points = [...losses].sort((a, b) => a[0] - b[0]).map(([x, y]) => ({ x, y }));
      chart.dataset.points = String(points.length);
      if (!points.length) return;
      chart.replaceChildren(lineChart([{ name: "train loss", points }], { xLabel: "step", yLabel: "loss", yMin: 0, height: 220 }));
      const last = points[points.length - 1];
      chart.setAttribute("aria-label", `Loss curve: ${points.length} steps, latest loss ${last.y.toFixed(3)} at step ${last.x}`);
    });
  };

  function drawProgress() {
    const p = job.progress || {};
    phases.replaceChildren(...PHASES.map((ph) => {
      const state = job.done_phases.includes(ph) ? "done" : ph === job.phase && !FINISHED.has(job.status) ? "running" : ph === job.phase ? "stopped" : "pending";
      return el("li", { class: `phase ${state}`, dataset: { phase: ph, state } }, el("strong", { text: ph }), " ",
        el("span", { class: "muted small", text: state }));
    }));
    overall.replaceChildren(progressBar(fraction(job), "job progress", "job-progress"),
      el("div", { class: "muted small", text: `${fmtPct(fraction(job))} · ${phaseSummary(job)}` }));
    const bits = [];
    if (p.examples != null) bits.push(`${p.examples} training examples`);
    if (p.step != null && p.total) bits.push(`step ${p.step}/${p.total}`);
    if (p.loss != null) bits.push(`loss ${Number(p.loss).toFixed(4)}`);
    if (p.eta_s != null && job.phase === "train" && !FINISHED.has(job.status)) bits.push(`eta ${fmtMs(p.eta_s * 1000)}`);
    if (p.episodes) bits.push(`eval ${p.model || ""} ${p.episodes_done || 0}/${p.episodes} episodes${p.episodes_reused ? ` (${p.episodes_reused} reused)` : ""}`);
    if (p.kl_step0 != null) bits.push(`KL at step 0: ${Number(p.kl_step0).toFixed(4)}`);
    live.textContent = bits.join(" · ");
  }

  function drawHead() {
    const finished = FINISHED.has(job.status);
    const cancel = finished ? null : el("button", { type: "button", class: "danger", "data-testid": "cancel-job", text: "Cancel job",
      disabled: job.cancel_requested, on: { click: () => askCancel(cancel) } });
    const buttons = [cancel];
    if (job.adapter && job.status === "succeeded") {
      buttons.push(el("button", { type: "button", class: "secondary", text: "Download adapter",
        on: { click: () => download(`/api/v1/training/jobs/${job.id}/adapter`, `${job.adapter.replace("@", "-")}.tar.gz`).catch(showErr) } }));
    }
    head.replaceChildren(...[el("a", { href: "#/training", text: "← Jobs" }),
      el("h2", { "data-testid": "job-name", text: job.name }),
      el("span", { "data-testid": "job-status", dataset: { status: job.status } }, statusBadge(job.status)),
      job.cancel_requested && !finished ? el("span", { class: "badge warn", text: "cancel requested" }) : null,
      finished ? null : streamState, el("span", { class: "spacer" }), el("span", { class: "buttons" }, buttons)].filter(Boolean));
    details.replaceChildren(jobDetails(job));
  }

  const showErr = (e) => { err.textContent = e.message; err.hidden = false; };

  function askCancel(trigger) {
    const yes = el("button", { type: "button", class: "danger", "data-testid": "confirm-yes", text: "Confirm: cancel the job" });
    const no = el("button", { type: "button", class: "secondary", text: "Keep it running" });
    const close = () => { confirmBar.hidden = true; confirmBar.replaceChildren(); };
    no.addEventListener("click", () => { close(); trigger.focus(); });
    yes.addEventListener("click", async () => {
      close();
      err.hidden = true;
      try {
        job = await api("POST", `/api/v1/training/jobs/${jobId}/cancel`);
        msg.textContent = job.status === "cancelled" ? "Cancelled." : "Cancel requested: the trainer stops at its next step.";
        drawHead();
      } catch (e) { showErr(e); }
    });
    confirmBar.replaceChildren(el("span", { text: `Cancel ${job.name}? A running job stops at its next step; nothing is promoted.` }),
      el("span", { class: "buttons" }, yes, no));
    confirmBar.hidden = false;
    yes.focus();
  }

  async function loadMetrics() {
    const m = await api("GET", `/api/v1/training/jobs/${jobId}/metrics`);
    for (const [step, loss] of m.loss || []) losses.set(step, loss);
    drawChart();
    const notes = [];
    if (m.val_loss != null) notes.push(`validation loss ${m.val_loss.toFixed(4)}`);
    if (m.train.seconds != null) notes.push(`trained in ${fmtMs(m.train.seconds * 1000)}`);
    if (m.train.kl_step0 != null) notes.push(`KL at step 0 ${m.train.kl_step0.toFixed(4)} (weak teacher ${Number(m.train.kl_step0_weak).toFixed(4)})`);
    const mins = Object.entries(m.minutes || {}).map(([k, v]) => `${k} ${v.toFixed(2)} min`);
    if (mins.length) notes.push(mins.join(", "));
    lossNote.textContent = notes.join(" · ");
    if (m.eval && m.eval.candidate_table) evalBox.replaceChildren(evalTable(m.eval));
    else if (m.eval && m.eval.candidate) evalBox.replaceChildren(el("p", { class: "muted", text: `Scoring ${m.eval.candidate} against ${m.eval.current}…` }));
    if (m.gate && m.gate.reason) gate.replaceChildren(gateView(m.gate));
    else if (FINISHED.has(job.status)) gate.replaceChildren(el("p", { class: "muted", "data-testid": "gate-none", text: `No gate decision: the job ${job.status} before publishing${job.reason ? ` (${job.reason})` : ""}.` }));
    if (m.prepare && m.prepare.train != null) prepBox.replaceChildren(prepareView(m.prepare));
  }

  async function refresh() {
    job = await api("GET", `/api/v1/training/jobs/${jobId}`);
    drawHead();
    drawProgress();
    await loadMetrics();
  }

  function onEvent(ev) {
    if (!job) return;
    const p = ev.payload || {};
    if (ev.type === "job.progress") {
      job.progress = { ...job.progress, ...p };
      if (p.phase) job.phase = p.phase;
      if (p.phase === "train" && p.step && p.loss != null) { losses.set(p.step, p.loss); drawChart(); }
    } else if (ev.type === "job.phase") {
      job.phase = p.phase;
      job.status = "running";
    } else if (ev.type === "job.started") {
      job.status = "running";
      drawHead();
    } else if (ev.type === "job.phase_done") {
      if (!job.done_phases.includes(p.phase)) job.done_phases = [...job.done_phases, p.phase];
      loadMetrics().catch(showErr);
    } else if (["job.succeeded", "job.failed", "job.cancelled"].includes(ev.type)) {
      refresh().catch(showErr);
      return;
    }
    drawProgress();
  }

  root.append(
    card(null, head, confirmBar, err, msg, overall, phases, live),
    el("div", { class: "grid-even" },
      card("Loss", chart, lossNote),
      card("Evaluation: candidate vs current", evalBox, el("h3", { text: "Eval gate" }), gate)),
    card("Job", details, prepBox));
  refresh().then(() => {
    if (FINISHED.has(job.status)) return; // its events are all in the views above
    stream = openStream(`/api/v1/training/jobs/${jobId}/ws`, { onEvent, onState: (s) => { streamState.textContent = s; } });
  }).catch((e) => {
    head.replaceChildren(el("a", { href: "#/training", text: "← Jobs" }), el("h2", { text: "Training job" }));
    showErr(e);
  });
  return () => { if (stream) stream.close(); };
}

function evalTable(ev) {
  const tasks = [...new Set([...Object.keys(ev.candidate_table || {}), ...Object.keys(ev.current_table || {})])];
  const cell = (tbl, task) => {
    const v = (tbl || {})[task];
    return v ? `${v[0]}/${v[1]} (${fmtPct(v[1] ? v[0] / v[1] : 0)})` : "—";
  };
  const rows = tasks.map((task) => ({ task, cand: cell(ev.candidate_table, task), cur: cell(ev.current_table, task),
    delta: rate(ev.candidate_table, task) - rate(ev.current_table, task) }));
  const t = table([
    ["Task", (r) => r.task],
    [`Candidate ${ev.candidate}`, (r) => r.cand],
    [`Current ${ev.current}`, (r) => r.cur],
    ["Δ", (r) => el("span", { class: r.delta > 0 ? "delta up" : r.delta < 0 ? "delta down" : "delta", text: `${r.delta > 0 ? "+" : ""}${(r.delta * 100).toFixed(0)} pts` })],
  ], rows, { "data-testid": "eval-table" });
  t.querySelectorAll("tbody tr").forEach((tr, i) => { tr.dataset.task = rows[i].task; });
  if (ev.candidate_rate != null) {
    t.append(el("tfoot", {}, el("tr", {}, el("th", { scope: "row", text: "All tasks" }),
      el("td", { "data-testid": "eval-candidate-rate", text: fmtPct(ev.candidate_rate) }),
      el("td", { "data-testid": "eval-current-rate", text: fmtPct(ev.current_rate) }),
      el("td", { text: `${ev.candidate_rate >= ev.current_rate ? "+" : ""}${((ev.candidate_rate - ev.current_rate) * 100).toFixed(0)} pts` }))));
  }
  return t;
}

function rate(tbl, task) {
  const v = (tbl || {})[task];
  return v && v[1] ? v[0] / v[1] : 0;
}

function gateView(g) {
  const verdict = g.promoted ? "promoted" : g.passed ? "passed, not promoted" : "refused";
  return el("div", { class: "gate" },
    el("p", {}, el("span", { class: `status ${g.promoted ? "promoted" : g.passed ? "pending" : "refused"}`, "data-testid": "gate-verdict", text: verdict })),
    el("p", { "data-testid": "gate-reason", text: g.reason }),
    el("dl", { class: "kv small" },
      el("dt", { text: "Rule" }), el("dd", { text: `promote only if candidate ≥ current + margin (${g.margin >= 0 ? "+" : ""}${(g.margin * 100).toFixed(0)} pts)` }),
      el("dt", { text: "Candidate" }), el("dd", { text: `${g.candidate}: ${fmtPct(g.candidate_rate)}` }),
      el("dt", { text: "Current" }), el("dd", { text: `${g.current}: ${fmtPct(g.current_rate)}` })));
}

function jobDetails(job) {
  const ds = job.dataset || {};
  const runs = ds.runs;
  const source = ds.dataset_id ? `uploaded dataset ${ds.dataset_id}` : runs
    ? [`recorded runs, policy ${runs.policy}`, runs.tasks ? `tasks ${runs.tasks.join(", ")}` : "any task",
      runs.model ? `model ${runs.model}` : null, runs.min_reward != null ? `reward ≥ ${runs.min_reward}` : null,
      runs.since ? `since ${fmtDate(runs.since)}` : null, runs.until ? `until ${fmtDate(runs.until)}` : null].filter(Boolean).join(", ")
    : "—";
  const hp = job.hyperparameters || {};
  const ev = job.eval || {};
  const rows = [
    ["Id", job.id], ["Method", job.method], ["Data", source], ["Continues from", job.base || "the base model"],
    ["Recipe", `rank ${hp.rank}, alpha ${hp.alpha}, lr ${hp.learning_rate}, ${hp.steps} steps × batch ${hp.batch_size}, max length ${hp.max_length}`],
    ["Evaluation", `${(ev.tasks || []).join(", ")} · seeds ${(ev.seeds || []).join(", ")} · ≤ ${ev.max_steps} steps · margin ${ev.gate_margin ?? "default"}`],
    ["Promote", job.promote], ["Adapter", job.adapter || "—"], ["Outcome", job.reason || "—"],
    ["Attempts", String(job.attempts)], ["Trainer", job.worker || "—"],
    ["Created", fmtDate(job.created_at)], ["Started", fmtDate(job.started_at) || "—"], ["Finished", fmtDate(job.finished_at) || "—"],
  ];
  return el("dl", { class: "kv", "data-testid": "job-details" }, rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
}

function prepareView(prep) {
  const byAction = Object.entries(prep.by_action || {}).map(([k, v]) => `${k} ${v}`).join(", ");
  return el("div", {}, el("h3", { text: "Training data" }),
    el("dl", { class: "kv small", "data-testid": "prepare-stats" },
      el("dt", { text: "Recorded steps" }), el("dd", { text: String(prep.records ?? "—") }),
      el("dt", { text: "Examples" }), el("dd", { text: `${prep.train} train (${prep.train_unique ?? "?"} unique, ${prep.repeated_for_balance ?? 0} repeated for balance), ${prep.val ?? 0} validation` }),
      el("dt", { text: "Skipped" }), el("dd", { text: String(prep.skipped ?? 0) }),
      el("dt", { text: "Actions" }), el("dd", { text: byAction || "—" })));
}

// ---------------------------------------------------------------- start form

const csv = (v) => v.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

/** "1000, 1002-1004" → [1000, 1002, 1003, 1004]; throws on anything else. */
function parseSeeds(text) {
  const out = [];
  for (const part of csv(text)) {
    const m = part.match(/^(\d+)(?:-(\d+))?$/);
    if (!m) throw new Error(`eval seeds: ${JSON.stringify(part)} is not a number or a range like 1000-1009`);
    const [a, b] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (b < a || b - a >= 200) throw new Error(`eval seeds: bad range ${part}`);
    for (let s = a; s <= b; s++) out.push(s);
  }
  return out;
}

function startJobForm(onCreated) {
  const f = {};
  const input = (key, label, attrs = {}) => {
    f[key] = el(attrs.tag || "input", { id: `job-${key}`, name: key, "data-testid": `job-${key}`, ...attrs, tag: null });
    return el("label", { for: `job-${key}` }, label, f[key]);
  };
  const select = (key, label, options, value) => {
    f[key] = el("select", { id: `job-${key}`, name: key, "data-testid": `job-${key}` },
      options.map(([v, t]) => el("option", { value: v, text: t })));
    f[key].value = value;
    return el("label", { for: `job-${key}` }, label, f[key]);
  };
  const num = (key, label, attrs) => input(key, label, { type: "number", ...attrs });
  const error = el("p", { class: "err", role: "alert", "data-testid": "start-job-error", hidden: true });
  const submit = el("button", { type: "submit", "data-testid": "start-job-submit", text: "Start training" });
  const datasetSel = el("select", { id: "job-dataset_id", "data-testid": "job-dataset_id" },
    el("option", { value: "", text: "— recorded runs (the filter below) —" }));
  const runsBox = el("fieldset", { "data-testid": "runs-filter" }, el("legend", { text: "Runs filter (successful runs only)" }),
    select("policy", "Policy that made the runs", [["model", "model"], ["replay", "replay (scripted)"], ["all", "any"]], "model"),
    input("tasks", "MiniWoB tasks (comma-separated; empty: any)", { placeholder: "click-button, click-link" }),
    input("model", "Model that ran them (empty: any)", { placeholder: "smollm2-135m-instruct" }),
    num("min_reward", "Minimum reward (empty: any reward > 0)", { step: "any", min: -1, max: 1 }),
    input("since", "Since", { type: "datetime-local" }),
    input("until", "Until", { type: "datetime-local" }));
  datasetSel.addEventListener("change", () => { runsBox.disabled = !!datasetSel.value; });
  api("GET", "/api/v1/training/datasets").then((rows) => datasetSel.append(...rows.map((d) =>
    el("option", { value: d.id, text: `${d.name} (${d.records} records, ${fmtDate(d.created_at)})` }))))
    .catch((e) => { error.textContent = `Datasets: ${e.message}`; error.hidden = false; });

  const form = el("form", { class: "form start-job", "data-testid": "start-job", novalidate: true },
    input("name", "Adapter name", { required: true, placeholder: "e.g. clicker", maxlength: 100 }),
    select("method", "Method", [["sft", "LoRA SFT"], ["sdft", "SDFT (self-distillation)"]], "sft"),
    el("label", { for: "job-dataset_id" }, "Training data", datasetSel),
    runsBox,
    input("base", "Continue from adapter (NAME or NAME@vN; empty: the base model)"),
    el("fieldset", {}, el("legend", { text: "Recipe" }),
      el("div", { class: "form-cols" },
        num("steps", "Steps", { min: 1, value: "60" }), num("batch_size", "Batch size", { min: 1, value: "4" }),
        num("learning_rate", "Learning rate", { step: "any", min: 0, value: "0.0002" }), num("rank", "LoRA rank", { min: 1, value: "8" }),
        num("max_length", "Max length (tokens)", { min: 32, value: "1024" }), num("seed", "Seed", { value: "0" }))),
    el("fieldset", {}, el("legend", { text: "Evaluation and gate" }),
      input("eval_tasks", "Eval tasks (comma-separated)", { required: true, placeholder: "click-button" }),
      input("eval_seeds", "Held-out seeds (e.g. 1000-1004, 1010)", { required: true, placeholder: "1000-1004" }),
      el("div", { class: "form-cols" },
        num("eval_max_steps", "Max steps per episode", { min: 1, max: 50, value: "6" }),
        num("gate_margin", "Gate margin (empty: server default)", { step: "any", min: -1, max: 1 })),
      select("promote", "When it passes the gate", [["auto", "promote it"], ["manual", "leave it for a person to promote"]], "auto")),
    error, el("div", { class: "buttons" }, submit));

  const n = (key) => (f[key].value.trim() === "" ? undefined : Number(f[key].value));
  const iso = (key) => (f[key].value ? new Date(f[key].value).toISOString() : undefined);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    let body;
    try {
      const runs = { policy: f.policy.value, tasks: f.tasks.value.trim() ? csv(f.tasks.value) : undefined,
        model: f.model.value.trim() || undefined, min_reward: n("min_reward"), since: iso("since"), until: iso("until") };
      body = {
        name: f.name.value.trim(), method: f.method.value,
        dataset: datasetSel.value ? { dataset_id: datasetSel.value } : { runs },
        base: f.base.value.trim() || undefined,
        hyperparameters: { steps: n("steps"), batch_size: n("batch_size"), learning_rate: n("learning_rate"), rank: n("rank"),
          alpha: n("rank") ? 2 * n("rank") : undefined, max_length: n("max_length"), seed: n("seed") },
        eval: { tasks: csv(f.eval_tasks.value), seeds: parseSeeds(f.eval_seeds.value), max_steps: n("eval_max_steps"),
          gate_margin: n("gate_margin") },
        promote: f.promote.value,
      };
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    try {
      onCreated(await api("POST", "/api/v1/training/jobs", body));
    } catch (err) {
      error.textContent = `The job was not started: ${err.message}`;
      error.hidden = false;
      error.focus();
    } finally {
      submit.disabled = false;
    }
  });
  error.tabIndex = -1;
  return form;
}
