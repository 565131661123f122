// #/runs: the runs list (search, filters, pages, auto-refresh) and the new-run form with every option of POST /runs.
"use strict";
import { el, api, card, fmtDate, statusBadge, showError, clearError } from "../core.js";

const STATUSES = ["queued", "planning", "awaiting_approval", "running", "awaiting_input", "succeeded", "failed", "cancelled"];
const CATEGORIES = ["submit_sensitive", "download", "leave_allowed_domains", "run_code", "overwrite_file", "delete_file", "mcp_tool"];
const PAGE = 50;
const REFRESH_MS = 4000;

// Kept while the app lives: coming back to #/runs finds the same filters and page.
const view = { q: "", status: "", agent: "", mode: "", model: "", from: "", to: "", offset: 0 };

/** A labelled control: <label>text <input …></label>. */
function field(text, control, attrs = {}) {
  return el("label", attrs, text, control);
}
function options(select, items, blank, keep = select.value) {
  select.replaceChildren(el("option", { value: "", text: blank }), ...items.map(([v, t]) => el("option", { value: v, text: t })));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}
/** "a.com, b.org c.net" → ["a.com", "b.org", "c.net"]; blank → null (the server's default). */
export function splitList(text) {
  const parts = text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
  return parts.length ? parts : null;
}
/** A local calendar day (YYYY-MM-DD) as the ISO instant it starts, or ends. */
function dayEdge(day, end) {
  return new Date(`${day}T${end ? "23:59:59.999" : "00:00:00"}`).toISOString();
}

export function render(root) {
  const agents = new Map(); // id → name
  const refs = { agentFilter: null, modelFilter: null, runAgent: null, runModel: null };
  const list = runsList(agents, refs);
  const form = runForm(agents, refs);
  root.append(el("div", { class: "grid2 runs-page" }, form.node, list.node));

  (async () => {
    const [a, m] = await Promise.allSettled([api("GET", "/api/v1/agents?limit=200"), api("GET", "/api/v1/models")]);
    if (a.status === "fulfilled") {
      for (const x of a.value.items) agents.set(x.id, x.name);
      const items = a.value.items.map((x) => [x.id, x.name]);
      options(refs.agentFilter, items, "any agent", view.agent);
      options(refs.runAgent, items, "none (a plain run)");
      form.agentChanged();
    } else showError(a.reason.message);
    if (m.status === "fulfilled") {
      const names = m.value.map((x) => [x.name, `${x.name} (${x.kind}${x.current && x.kind === "adapter" ? ", current" : ""})`]);
      options(refs.modelFilter, names, "any model", view.model);
      options(refs.runModel, names, "server default");
    } else showError(m.reason.message);
    list.refresh();
  })();
  return list.stop;
}

function runsList(agents, refs) {
  const search = el("input", { id: "runs-search", type: "search", "data-testid": "runs-search", value: view.q,
    placeholder: "Search tasks", autocomplete: "off" });
  const status = el("select", { id: "status-filter", "data-testid": "status-filter" });
  options(status, STATUSES.map((s) => [s, s.replace("_", " ")]), "any status");
  status.value = view.status;
  const agent = el("select", { id: "agent-filter", "data-testid": "agent-filter" }, el("option", { value: "", text: "any agent" }));
  const mode = el("select", { id: "mode-filter", "data-testid": "mode-filter" });
  options(mode, [["direct", "direct"], ["team", "team"]], "any mode");
  mode.value = view.mode;
  const model = el("select", { id: "model-filter", "data-testid": "model-filter" }, el("option", { value: "", text: "any model" }));
  const from = el("input", { id: "created-after", type: "date", "data-testid": "created-after", value: view.from });
  const to = el("input", { id: "created-before", type: "date", "data-testid": "created-before", value: view.to });
  refs.agentFilter = agent;
  refs.modelFilter = model;
  const clear = el("button", { type: "button", class: "secondary", "data-testid": "runs-clear", text: "Clear filters" });
  const filters = el("form", { class: "filters", role: "search", "aria-label": "Filter runs", "data-testid": "runs-filters" },
    field("Search", search, { class: "grow" }), field("Status", status), field("Agent", agent), field("Mode", mode),
    field("Model", model), field("Created from", from), field("Created to", to), clear);
  const box = el("div", { id: "runs", class: "table-wrap", "data-testid": "runs-list", "aria-live": "off" },
    el("p", { class: "muted", text: "Loading runs…" }));
  const prev = el("button", { type: "button", class: "secondary", "data-testid": "runs-prev", text: "← Newer" });
  const next = el("button", { type: "button", class: "secondary", "data-testid": "runs-next", text: "Older →" });
  const where = el("span", { class: "muted", "data-testid": "runs-range", role: "status" });
  const pager = el("nav", { class: "pager", "aria-label": "Pages of runs", "data-testid": "runs-pager" }, prev, where, next);
  const total = el("span", { class: "muted small", "data-testid": "runs-total" });
  const node = card(null, el("div", { class: "row" }, el("h2", { text: "Runs" }), total), filters, box, pager);

  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    const p = new URLSearchParams({ limit: PAGE, offset: view.offset });
    for (const k of ["q", "status", "agent", "mode", "model"]) if (view[k]) p.set(k, view[k]);
    if (view.from) p.set("created_after", dayEdge(view.from, false));
    if (view.to) p.set("created_before", dayEdge(view.to, true));
    let page;
    try {
      page = await api("GET", `/api/v1/runs?${p}`);
    } catch (e) {
      if (mine === seq) box.replaceChildren(el("p", { class: "err", "data-testid": "runs-error", text: e.message }));
      return;
    }
    if (mine !== seq) return; // a newer request (the user changed a filter) answers instead
    if (page.items.length === 0 && view.offset > 0 && page.total > 0) { // the page emptied: go to the last one
      view.offset = Math.floor((page.total - 1) / PAGE) * PAGE;
      return refresh();
    }
    draw(page);
  }

  function draw(page) {
    const focused = document.activeElement && box.contains(document.activeElement)
      ? document.activeElement.closest("[data-run-id]")?.dataset.runId : null;
    const filtered = ["q", "status", "agent", "mode", "model", "from", "to"].some((k) => view[k]);
    total.textContent = filtered ? `${page.total} ${page.total === 1 ? "run matches" : "runs match"}` : `${page.total} run${page.total === 1 ? "" : "s"}`;
    if (!page.items.length) {
      box.replaceChildren(el("p", { class: "muted", "data-testid": "runs-empty",
        text: filtered ? "No run matches these filters." : "No runs yet: start one with the form." }));
    } else {
      box.replaceChildren(runsTable(page.items, agents));
    }
    const first = page.total ? view.offset + 1 : 0;
    where.textContent = `${first}–${view.offset + page.items.length} of ${page.total}`;
    prev.disabled = view.offset === 0;
    next.disabled = view.offset + PAGE >= page.total;
    pager.hidden = page.total <= PAGE && view.offset === 0;
    if (focused) box.querySelector(`[data-run-id="${CSS.escape(focused)}"] a`)?.focus();
  }

  function changed() { view.offset = 0; refresh(); }
  let debounce = null;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { view.q = search.value.trim(); changed(); }, 300);
  });
  filters.addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(debounce); view.q = search.value.trim(); changed(); });
  for (const [key, input] of [["status", status], ["agent", agent], ["mode", mode], ["model", model], ["from", from], ["to", to]]) {
    input.addEventListener("change", () => { view[key] = input.value; changed(); });
  }
  clear.addEventListener("click", () => {
    Object.assign(view, { q: "", status: "", agent: "", mode: "", model: "", from: "", to: "" });
    for (const input of [search, status, agent, mode, model, from, to]) input.value = "";
    changed();
    search.focus();
  });
  prev.addEventListener("click", () => { view.offset = Math.max(0, view.offset - PAGE); refresh(); });
  next.addEventListener("click", () => { view.offset += PAGE; refresh(); });

  // The first load waits for the agent names; after that the list refreshes itself, keeping filters, page and focus.
  let timer = null, stopped = false;
  return {
    node,
    refresh: () => {
      if (stopped || timer) return;
      refresh();
      timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
    },
    stop: () => { stopped = true; clearInterval(timer); clearTimeout(debounce); seq++; },
  };
}

function runsTable(items, agents) {
  const head = ["Status", "Task", "Agent", "Mode", "Model", "Created"];
  return el("table", { class: "runs-table", "data-testid": "runs-table" },
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, items.map((r) => el("tr", { dataset: { runId: r.id } },
      el("td", {}, statusBadge(r.status)),
      el("td", { class: "task-cell" }, el("a", { href: `#/runs/${r.id}`, title: r.task, text: r.task.length > 140 ? r.task.slice(0, 140) + "…" : r.task }),
        r.reason && r.status !== "succeeded" ? el("div", { class: "muted small", text: r.reason }) : null),
      el("td", {}, r.agent_id ? `${agents.get(r.agent_id) || r.agent_id.slice(0, 8)} v${r.agent_version}` : "—"),
      el("td", {}, r.mode),
      el("td", { class: "small" }, r.model || "—"),
      el("td", { class: "small nowrap" }, fmtDate(r.created_at))))));
}

/** The new-run form. With an agent picked, the run is the agent's: its mode, model and policy are the agent's own. */
function runForm(agents, refs) {
  const task = el("textarea", { id: "task", name: "task", rows: 3, required: true, "data-testid": "run-task",
    placeholder: "What should the agent do?" });
  const startUrl = el("input", { id: "start-url", name: "start_url", type: "text", inputmode: "url", "data-testid": "run-start-url",
    placeholder: "https://…", autocomplete: "off" });
  const agent = el("select", { id: "run-agent", "data-testid": "run-agent" }, el("option", { value: "", text: "none (a plain run)" }));
  const mode = el("select", { id: "run-mode", "data-testid": "run-mode" },
    el("option", { value: "direct", text: "direct" }), el("option", { value: "team", text: "team (planned)" }));
  const model = el("select", { id: "run-model", "data-testid": "run-model" }, el("option", { value: "", text: "server default" }));
  const maxSteps = el("input", { id: "max-steps", type: "number", min: 1, step: 1, "data-testid": "run-max-steps", placeholder: "default" });
  const domains = el("input", { id: "allowed-domains", type: "text", "data-testid": "run-allowed-domains",
    placeholder: "the start URL's site (or the first one opened); * for any public site", autocomplete: "off" });
  const autoApprove = el("input", { id: "auto-approve", type: "checkbox", "data-testid": "run-auto-approve" });
  const temperature = el("input", { id: "temperature", type: "number", min: 0, max: 2, step: 0.1, value: "0", "data-testid": "run-temperature" });
  refs.runAgent = agent;
  refs.runModel = model;
  const rules = CATEGORIES.map((c) => {
    const s = el("select", { id: `approval-${c}`, "data-testid": `run-approval-${c}`, dataset: { category: c } });
    options(s, [["allow", "allow"], ["ask", "ask"], ["deny", "deny"]], "default");
    return s;
  });
  const policy = el("select", { id: "run-policy", "data-testid": "run-policy" },
    el("option", { value: "model", text: "model decides" }), el("option", { value: "replay", text: "replay scripted actions" }));
  const actions = el("textarea", { id: "run-actions", rows: 3, "data-testid": "run-actions",
    placeholder: '[{"name": "finish", "answer": "ok"}]' });
  const envTask = el("input", { id: "run-env-task", type: "text", "data-testid": "run-env-task", placeholder: "e.g. click-button", autocomplete: "off" });
  const envSeed = el("input", { id: "run-env-seed", type: "number", min: 0, step: 1, "data-testid": "run-env-seed" });
  const purpose = el("select", { id: "run-purpose", "data-testid": "run-purpose" },
    el("option", { value: "task", text: "task" }), el("option", { value: "eval", text: "eval (a measurement)" }));
  const agentNote = el("p", { class: "muted small", "data-testid": "run-agent-note", hidden: true });
  const err = el("p", { class: "err", "data-testid": "run-form-error", hidden: true });
  const submit = el("button", { id: "submit-run", type: "submit", "data-testid": "submit-run", text: "Start run" });
  const ownByAgent = [mode, model, temperature, purpose, envTask, envSeed, ...rules];

  const form = el("form", { id: "run-form", class: "form", "data-testid": "run-form", novalidate: true },
    field("Task", task), field("Start URL", startUrl),
    field("Agent", agent), agentNote,
    el("div", { class: "form-cols" }, field("Mode", mode), field("Model", model)),
    el("div", { class: "form-cols" }, field("Max steps", maxSteps), field("Temperature", temperature)),
    field("Allowed domains (comma separated)", domains),
    el("label", { class: "check" }, autoApprove, "Auto-approve the plan (team runs)"),
    el("details", { class: "run-more" }, el("summary", { text: "Approval rules" }),
      el("p", { class: "muted small", text: "Override config/approvals.json for this run." }),
      el("div", { class: "form-cols" }, CATEGORIES.map((c, i) => field(c.replaceAll("_", " "), rules[i])))),
    el("details", { class: "run-more" }, el("summary", { text: "Scripted runs and MiniWoB" }),
      field("Policy", policy), field("Actions (JSON list, for replay)", actions),
      el("div", { class: "form-cols" }, field("MiniWoB task", envTask), field("Seed", envSeed)), field("Purpose", purpose)),
    err, el("div", { class: "buttons" }, submit));

  function agentChanged() {
    const a = agent.value;
    for (const c of ownByAgent) c.disabled = !!a;
    agentNote.hidden = !a;
    agentNote.textContent = a ? `Runs as ${agents.get(a) || a}: its mode, model, instructions and approval rules apply.` : "";
    autoApprove.disabled = !a && mode.value !== "team";
    if (autoApprove.disabled) autoApprove.checked = false;
  }
  agent.addEventListener("change", agentChanged);
  mode.addEventListener("change", agentChanged);
  agentChanged();

  function body() {
    const b = { task: task.value.trim() };
    if (startUrl.value.trim()) b.start_url = startUrl.value.trim();
    if (maxSteps.value !== "") b.max_steps = Number(maxSteps.value);
    const d = splitList(domains.value);
    if (d) b.allowed_domains = d;
    if (autoApprove.checked) b.auto_approve = true;
    if (policy.value === "replay") {
      b.policy = "replay";
      let parsed;
      try { parsed = JSON.parse(actions.value || "null"); } catch (e) { throw new Error(`Actions are not JSON: ${e.message}`); }
      if (parsed != null) b.actions = parsed;
    } else if (actions.value.trim()) throw new Error("Actions are only for the replay policy.");
    if (agent.value) return b;
    b.mode = mode.value;
    if (model.value) b.model = model.value;
    if (temperature.value !== "" && Number(temperature.value) !== 0) b.temperature = Number(temperature.value);
    const overrides = Object.fromEntries(rules.filter((s) => s.value).map((s) => [s.dataset.category, s.value]));
    if (Object.keys(overrides).length) b.approval_policy = overrides;
    if (envTask.value.trim() || envSeed.value !== "") b.env = { type: "miniwob", task: envTask.value.trim(), seed: Number(envSeed.value || 0) };
    if (purpose.value !== "task") b.purpose = purpose.value;
    return b;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.hidden = true;
    clearError();
    submit.disabled = true;
    try {
      const b = body();
      const run = agent.value
        ? await api("POST", `/api/v1/agents/${encodeURIComponent(agent.value)}/runs`, b)
        : await api("POST", "/api/v1/runs", b);
      location.hash = `#/runs/${run.id}`;
    } catch (ex) {
      err.textContent = ex.message;
      err.hidden = false;
      showError(ex.message);
    } finally {
      submit.disabled = false;
    }
  });
  return { node: card("New run", form), agentChanged };
}
