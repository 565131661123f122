// #/agents: saved agents (create, edit as new versions, run, delete, their runs and stats) and document collections.
"use strict";
import { el, api, apiUpload, card, table, fmtBytes, fmtDate, fmtPct, statusBadge, showError, clearError } from "../core.js";

const CATEGORIES = ["submit_sensitive", "download", "leave_allowed_domains", "run_code", "overwrite_file", "delete_file", "mcp_tool"];
const AGENT_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$/;
const ACCEPT = ".pdf,.docx,.html,.htm,.md,.markdown,.txt";

const label = (text, control, attrs = {}) => el("label", attrs, text, control);
const list = (text) => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

/** A message line under a form: role=status for success, .err for failure. */
function notice(testid) {
  const p = el("p", { class: "small", role: "status", "data-testid": testid, hidden: true });
  return {
    node: p,
    ok(text) { p.className = "small ok-text"; p.textContent = text; p.hidden = false; },
    fail(text) { p.className = "small err"; p.textContent = text; p.hidden = false; },
    clear() { p.hidden = true; p.textContent = ""; },
  };
}

/** A button that asks "Confirm?" in place before `action` runs (no modal: keyboard and test friendly). */
function confirmButton(text, testid, action) {
  const wrap = el("span", { class: "buttons" });
  const start = el("button", { type: "button", class: "danger small-btn", "data-testid": testid, text });
  const yes = el("button", { type: "button", class: "danger small-btn", "data-testid": `${testid}-confirm`, text: `Confirm ${text.toLowerCase()}` });
  const no = el("button", { type: "button", class: "secondary small-btn", text: "Keep" });
  const reset = () => { wrap.replaceChildren(start); };
  start.addEventListener("click", () => { wrap.replaceChildren(yes, no); yes.focus(); });
  no.addEventListener("click", () => { reset(); start.focus(); });
  yes.addEventListener("click", async () => { yes.disabled = no.disabled = true; await action(); reset(); });
  wrap.append(start);
  return wrap;
}

export function render(root) {
  const state = { agents: [], collections: [], models: [], editing: null, alive: true };
  const agentsBox = el("div", { class: "table-wrap", "data-testid": "agents-table-box" }, el("p", { class: "muted", text: "Loading agents…" }));
  const detail = el("div", { "data-testid": "agent-detail" });
  const form = agentForm(state, () => loadAgents());
  const cols = collectionsCard(state, () => { form.fillDocuments(); });
  root.append(el("div", { class: "grid2 agents-page" },
    el("div", { class: "stack" }, form.node),
    el("div", { class: "stack" }, card("Agents", agentsBox, detail), cols.node)));

  async function loadAgents() {
    try {
      state.agents = (await api("GET", "/api/v1/agents?limit=200")).items;
    } catch (e) {
      agentsBox.replaceChildren(el("p", { class: "err", text: e.message }));
      return;
    }
    const stats = await Promise.all(state.agents.map((a) => api("GET", `/api/v1/agents/${a.id}/runs?limit=5`).catch(() => null)));
    if (!state.alive) return;
    agentsBox.replaceChildren(state.agents.length ? agentsTable(state.agents, stats) :
      el("p", { class: "muted", "data-testid": "agents-empty", text: "No agents yet: save one with the form." }));
  }

  function agentsTable(agents, stats) {
    const s = (i) => stats[i] && stats[i].stats;
    const rows = agents.map((a, i) => ({ a, s: s(i), recent: stats[i] ? stats[i].items : [] }));
    const t = table([
      ["Name", (r) => el("span", {}, el("strong", { text: r.a.name }), r.a.description ? el("div", { class: "muted small", text: r.a.description }) : null)],
      ["Version", (r) => `v${r.a.version}`],
      ["Mode", (r) => r.a.mode],
      ["Model", (r) => r.a.model || "default"],
      ["Runs", (r) => (r.s ? String(r.s.runs) : "—")],
      ["Success", (r) => (r.s && r.s.finished ? `${fmtPct(r.s.success_rate)} of ${r.s.finished}` : "—")],
      ["Mean steps", (r) => (r.s && r.s.mean_steps != null ? String(r.s.mean_steps) : "—")],
      ["", (r) => el("span", { class: "buttons" },
        el("button", { type: "button", class: "secondary small-btn", "data-testid": "agent-run", text: "Run",
          "aria-label": `Run ${r.a.name}`, on: { click: () => showRun(r.a) } }),
        el("button", { type: "button", class: "secondary small-btn", "data-testid": "agent-edit", text: "Edit",
          "aria-label": `Edit ${r.a.name}`, on: { click: () => form.edit(r.a) } }),
        el("button", { type: "button", class: "secondary small-btn", "data-testid": "agent-runs", text: "Runs",
          "aria-label": `Runs of ${r.a.name}`, on: { click: () => showRuns(r.a, r.s, r.recent) } }),
        confirmButton("Delete", "agent-delete", async () => {
          try {
            await api("DELETE", `/api/v1/agents/${r.a.id}`);
            if (state.editing && state.editing.id === r.a.id) form.reset();
            detail.replaceChildren();
            await loadAgents();
          } catch (e) { showError(e.message); }
        }))],
    ], rows, { "data-testid": "agents-table", class: "agents-table" });
    [...t.tBodies[0].rows].forEach((tr, i) => { tr.dataset.agentId = rows[i].a.id; tr.dataset.agentName = rows[i].a.name; });
    return t;
  }

  function showRuns(agent, stats, recent) {
    const s = stats || {};
    detail.replaceChildren(el("section", { class: "agent-detail", "data-testid": "agent-stats", "aria-label": `Runs of ${agent.name}` },
      el("h3", { text: `${agent.name}: runs` }),
      el("dl", { class: "kv" },
        el("dt", { text: "runs" }), el("dd", { text: String(s.runs ?? 0) }),
        el("dt", { text: "succeeded" }), el("dd", { text: `${s.succeeded ?? 0} of ${s.finished ?? 0} finished (${fmtPct(s.success_rate)})` }),
        el("dt", { text: "mean steps" }), el("dd", { text: s.mean_steps == null ? "—" : String(s.mean_steps) }),
        el("dt", { text: "mean duration" }), el("dd", { text: s.mean_duration_s == null ? "—" : `${s.mean_duration_s} s` })),
      recent.length ? table([
        ["Status", (r) => statusBadge(r.status)],
        ["Task", (r) => el("a", { href: `#/runs/${r.id}`, text: r.task })],
        ["Version", (r) => `v${r.agent_version}`],
        ["Steps", (r) => String(r.steps)],
        ["Created", (r) => fmtDate(r.created_at)],
      ], recent) : el("p", { class: "muted", text: "No runs yet." }),
      el("a", { href: "#/runs", text: "All runs (filter by this agent there)" })));
  }

  function showRun(agent) {
    const task = el("textarea", { id: "agent-run-task", rows: 2, required: true, "data-testid": "agent-run-task" });
    const url = el("input", { id: "agent-run-url", type: "text", inputmode: "url", "data-testid": "agent-run-url", autocomplete: "off" });
    const steps = el("input", { id: "agent-run-steps", type: "number", min: 1, "data-testid": "agent-run-steps", placeholder: agent.max_steps ? String(agent.max_steps) : "default" });
    const auto = el("input", { id: "agent-run-auto", type: "checkbox", disabled: agent.mode !== "team" });
    const actions = el("textarea", { id: "agent-run-actions", rows: 2, "data-testid": "agent-run-actions", placeholder: '[{"name": "finish", "answer": "ok"}]' });
    const msg = notice("agent-run-error");
    const go = el("button", { type: "submit", "data-testid": "agent-run-submit", text: `Run ${agent.name}` });
    const f = el("form", { class: "form agent-run-form", "data-testid": "agent-run-form", novalidate: true },
      el("h3", { text: `Run ${agent.name} (v${agent.version})` }),
      label("Task", task), label("Start URL", url), label("Max steps", steps),
      el("label", { class: "check" }, auto, "Auto-approve the plan (team agents)"),
      el("details", { class: "run-more" }, el("summary", { text: "Scripted actions (replay instead of the model)" }), label("Actions (JSON list)", actions)),
      msg.node, el("div", { class: "buttons" }, go,
        el("button", { type: "button", class: "secondary", text: "Close", on: { click: () => detail.replaceChildren() } })));
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      msg.clear();
      if (!task.value.trim()) { msg.fail("A task is required."); task.focus(); return; }
      const body = { task: task.value.trim() };
      if (url.value.trim()) body.start_url = url.value.trim();
      if (steps.value !== "") body.max_steps = Number(steps.value);
      if (auto.checked) body.auto_approve = true;
      if (actions.value.trim()) {
        try { body.actions = JSON.parse(actions.value); } catch (ex) { msg.fail(`Actions are not JSON: ${ex.message}`); return; }
        body.policy = "replay";
      }
      go.disabled = true;
      try {
        const run = await api("POST", `/api/v1/agents/${agent.id}/runs`, body);
        location.hash = `#/runs/${run.id}`;
      } catch (ex) { msg.fail(ex.message); showError(ex.message); } finally { go.disabled = false; }
    });
    detail.replaceChildren(f);
    task.focus();
  }

  (async () => {
    const [m] = await Promise.allSettled([api("GET", "/api/v1/models")]);
    if (m.status === "fulfilled") state.models = m.value;
    form.fillModels();
    await Promise.all([loadAgents(), cols.load()]);
  })();
  return () => { state.alive = false; };
}

function agentForm(state, saved) {
  const name = el("input", { id: "agent-name", type: "text", required: true, maxlength: 100, autocomplete: "off", "data-testid": "agent-name" });
  const description = el("input", { id: "agent-description", type: "text", maxlength: 2000, "data-testid": "agent-description" });
  const instructions = el("textarea", { id: "agent-instructions", rows: 4, maxlength: 10000, "data-testid": "agent-instructions",
    placeholder: "Put before every task of this agent's runs" });
  const mode = el("select", { id: "agent-mode", "data-testid": "agent-mode" },
    el("option", { value: "direct", text: "direct" }), el("option", { value: "team", text: "team" }));
  const model = el("select", { id: "agent-model", "data-testid": "agent-model" });
  const domains = el("input", { id: "agent-domains", type: "text", "data-testid": "agent-domains", placeholder: "the start URL's site", autocomplete: "off" });
  const maxSteps = el("input", { id: "agent-max-steps", type: "number", min: 1, "data-testid": "agent-max-steps", placeholder: "server default" });
  const tools = el("input", { id: "agent-tools", type: "text", "data-testid": "agent-tools", placeholder: "server.tool, …", autocomplete: "off" });
  const docs = el("fieldset", { class: "doc-choices", "data-testid": "agent-documents" }, el("legend", { text: "Document collections" }));
  const rules = CATEGORIES.map((c) => el("select", { id: `agent-approval-${c}`, dataset: { category: c } },
    ["", "allow", "ask", "deny"].map((v) => el("option", { value: v, text: v || "default" }))));
  const msg = notice("agent-form-msg");
  const title = el("h2", { text: "New agent" });
  const submit = el("button", { type: "submit", "data-testid": "agent-save", text: "Create agent" });
  const cancel = el("button", { type: "button", class: "secondary", "data-testid": "agent-cancel", text: "Cancel edit", hidden: true });
  const form = el("form", { class: "form", id: "agent-form", "data-testid": "agent-form", novalidate: true },
    label("Name", name), label("Description", description), label("Instructions", instructions),
    el("div", { class: "form-cols" }, label("Mode", mode), label("Model", model)),
    el("div", { class: "form-cols" }, label("Max steps", maxSteps), label("Allowed domains", domains)),
    label("MCP tools (comma separated)", tools), docs,
    el("details", { class: "run-more" }, el("summary", { text: "Approval rules" }),
      el("div", { class: "form-cols" }, CATEGORIES.map((c, i) => label(c.replaceAll("_", " "), rules[i])))),
    msg.node, el("div", { class: "buttons" }, submit, cancel));

  function fillModels(keep = model.value) {
    model.replaceChildren(el("option", { value: "", text: "server default" }),
      ...state.models.map((m) => el("option", { value: m.name, text: `${m.name} (${m.kind})` })));
    if (keep && ![...model.options].some((o) => o.value === keep)) model.append(el("option", { value: keep, text: keep }));
    model.value = keep || "";
  }
  function fillDocuments(chosen = [...docs.querySelectorAll("input:checked")].map((i) => i.value)) {
    docs.replaceChildren(el("legend", { text: "Document collections" }),
      ...(state.collections.length ? state.collections.map((c) => el("label", { class: "check" },
        el("input", { type: "checkbox", value: c.id, checked: chosen.includes(c.id) }), c.name))
        : [el("span", { class: "muted small", text: "None yet (create one under Document collections)." })]));
  }
  function fill(a) {
    name.value = a ? a.name : ""; description.value = a ? a.description : ""; instructions.value = a ? a.instructions : "";
    mode.value = a ? a.mode : "direct"; fillModels(a ? a.model || "" : "");
    domains.value = a && a.allowed_domains ? a.allowed_domains.join(", ") : "";
    maxSteps.value = a && a.max_steps ? String(a.max_steps) : ""; tools.value = a ? a.tools.join(", ") : "";
    fillDocuments(a ? a.documents : []);
    for (const s of rules) s.value = (a && a.approval_policy && a.approval_policy[s.dataset.category]) || "";
  }
  function edit(a) {
    state.editing = a;
    fill(a);
    title.textContent = `Edit ${a.name} (v${a.version})`;
    submit.textContent = "Save changes";
    cancel.hidden = false;
    msg.clear();
    name.focus();
  }
  function reset() {
    state.editing = null;
    fill(null);
    title.textContent = "New agent";
    submit.textContent = "Create agent";
    cancel.hidden = true;
  }
  cancel.addEventListener("click", () => { reset(); msg.clear(); });

  function body() {
    const n = name.value.trim();
    if (!AGENT_NAME.test(n)) throw new Error("Name: 1–100 letters, digits, spaces, dots, dashes or underscores, starting with a letter or digit.");
    if (maxSteps.value !== "" && !(Number.isInteger(Number(maxSteps.value)) && Number(maxSteps.value) >= 1)) throw new Error("Max steps: a whole number, 1 or more.");
    const d = list(domains.value);
    const overrides = Object.fromEntries(rules.filter((s) => s.value).map((s) => [s.dataset.category, s.value]));
    return {
      name: n, description: description.value.trim(), instructions: instructions.value.trim(), mode: mode.value,
      model: model.value || null, allowed_domains: d.length ? d : null, max_steps: maxSteps.value === "" ? null : Number(maxSteps.value),
      tools: list(tools.value), documents: [...docs.querySelectorAll("input:checked")].map((i) => i.value),
      approval_policy: Object.keys(overrides).length ? overrides : null,
    };
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    msg.clear();
    clearError();
    let b;
    try { b = body(); } catch (ex) { msg.fail(ex.message); name.focus(); return; }
    submit.disabled = true;
    try {
      const editing = state.editing;
      const out = editing ? await api("PATCH", `/api/v1/agents/${editing.id}`, b) : await api("POST", "/api/v1/agents", b);
      reset();
      msg.ok(editing ? `Saved ${out.name} as version ${out.version}.` : `Created ${out.name} (version ${out.version}).`);
      await saved();
    } catch (ex) {
      msg.fail(ex.message);
    } finally {
      submit.disabled = false;
    }
  });
  fillModels("");
  fillDocuments([]);
  return { node: el("section", { class: "card" }, title, form), edit, reset, fillModels: () => fillModels(), fillDocuments: () => fillDocuments() };
}

function collectionsCard(state, changed) {
  const cname = el("input", { id: "collection-name", type: "text", maxlength: 100, autocomplete: "off", "data-testid": "collection-name" });
  const cdesc = el("input", { id: "collection-description", type: "text", maxlength: 2000, "data-testid": "collection-description" });
  const msg = notice("collection-msg");
  const create = el("form", { class: "form collection-form", "data-testid": "collection-form", novalidate: true },
    el("div", { class: "form-cols" }, label("New collection", cname), label("Description", cdesc)),
    msg.node, el("div", { class: "buttons" }, el("button", { type: "submit", "data-testid": "collection-create", text: "Create collection" })));
  const lastUpload = new Map(); // collection id → the last upload's outcome, shown after the redraw
  const box = el("div", { "data-testid": "collections-list" }, el("p", { class: "muted", text: "Loading collections…" }));
  const which = el("select", { id: "doc-search-collection", "data-testid": "doc-search-collection" });
  const q = el("input", { id: "doc-search-q", type: "search", "data-testid": "doc-search-q", placeholder: "Search passages", autocomplete: "off" });
  const hits = el("div", { "data-testid": "doc-hits", "aria-live": "polite" });
  const search = el("form", { class: "filters doc-search", role: "search", "data-testid": "doc-search", "aria-label": "Search documents" },
    label("Collection", which), label("Search", q, { class: "grow" }), el("button", { type: "submit", "data-testid": "doc-search-go", text: "Search" }));

  async function load() {
    try {
      state.collections = await api("GET", "/api/v1/collections");
    } catch (e) {
      box.replaceChildren(el("p", { class: "err", text: e.message }));
      return;
    }
    const keep = which.value;
    which.replaceChildren(...state.collections.map((c) => el("option", { value: c.id, text: c.name })));
    if (keep && state.collections.some((c) => c.id === keep)) which.value = keep;
    search.hidden = !state.collections.length;
    box.replaceChildren(...(state.collections.length ? state.collections.map(collectionView)
      : [el("p", { class: "muted", text: "No collections yet." })]));
    changed();
  }

  function collectionView(c) {
    const file = el("input", { type: "file", id: `doc-file-${c.id}`, multiple: true, accept: ACCEPT, "data-testid": "doc-upload" });
    const up = notice("doc-upload-msg");
    const last = lastUpload.get(c.id);
    if (last) up[last.ok ? "ok" : "fail"](last.text);
    file.addEventListener("change", async () => {
      up.clear();
      const done = [];
      let failed = null;
      file.disabled = true;
      for (const f of file.files) {
        try {
          const doc = await apiUpload("POST", `/api/v1/collections/${c.id}/documents?name=${encodeURIComponent(f.name)}`, f);
          done.push(doc.status === "ready" ? `${f.name}: ready, ${doc.chunks} passages` : `${f.name}: failed (${doc.reason})`);
        } catch (e) { failed = `${f.name}: ${e.message}`; break; }
      }
      lastUpload.set(c.id, failed ? { ok: false, text: failed } : { ok: true, text: `Uploaded ${done.join("; ")}.` });
      await load(); // redraws this collection with its documents and the message
    });
    const docs = c.documents.length ? table([
      ["Document", (d) => d.filename],
      ["Size", (d) => fmtBytes(d.size_bytes)],
      ["Status", (d) => el("span", {}, statusBadge(d.status), d.reason ? el("div", { class: "err small", text: d.reason }) : null)],
      ["Passages", (d) => String(d.chunks)],
      ["", (d) => confirmButton("Delete", "doc-delete", async () => {
        try { await api("DELETE", `/api/v1/collections/${c.id}/documents/${d.id}`); await load(); } catch (e) { showError(e.message); }
      })],
    ], c.documents, { class: "docs-table" }) : el("p", { class: "muted small", text: "No documents yet." });
    return el("article", { class: "collection", dataset: { collectionId: c.id }, "data-testid": "collection" },
      el("div", { class: "row" }, el("h3", { text: c.name }), el("span", { class: "muted small", text: c.description }), el("span", { class: "spacer" }),
        confirmButton("Delete collection", "collection-delete", async () => {
          try { await api("DELETE", `/api/v1/collections/${c.id}`); await load(); } catch (e) { showError(e.message); }
        })),
      el("div", { class: "table-wrap" }, docs),
      el("label", { class: "upload" }, `Upload to ${c.name} (PDF, Word, HTML, Markdown, text)`, file), up.node);
  }

  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    msg.clear();
    const n = cname.value.trim();
    if (!AGENT_NAME.test(n)) { msg.fail("Name: 1–100 letters, digits, spaces, dots, dashes or underscores."); cname.focus(); return; }
    try {
      const c = await api("POST", "/api/v1/collections", { name: n, description: cdesc.value.trim() });
      cname.value = cdesc.value = "";
      await load();
      msg.ok(`Created ${c.name}.`);
    } catch (ex) { msg.fail(ex.message); }
  });
  search.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!q.value.trim() || !which.value) return;
    hits.replaceChildren(el("p", { class: "muted", text: "Searching…" }));
    try {
      const found = await api("GET", `/api/v1/collections/${which.value}/search?${new URLSearchParams({ q: q.value.trim(), k: 5 })}`);
      hits.replaceChildren(...(found.length ? found.map((h) => el("article", { class: "hit", "data-testid": "doc-hit" },
        el("div", { class: "small muted" }, `${h.filename} · passage ${h.position + 1} · score ${h.score.toFixed(3)}`),
        el("p", { text: h.text }))) : [el("p", { class: "muted", "data-testid": "doc-no-hits", text: "Nothing found." })]));
    } catch (ex) { hits.replaceChildren(el("p", { class: "err", text: ex.message })); }
  });
  search.hidden = true;
  return { node: el("section", { class: "card", "data-testid": "collections", "aria-labelledby": "collections-title" },
    el("h2", { id: "collections-title", text: "Document collections" }), create, box, search, hits), load };
}
