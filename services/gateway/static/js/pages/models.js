// #/models: the base model and adapter versions, admin registry actions, the adapter cache, direct inference.
"use strict";
import { el, api, card, table, every, fmtDate, fmtMs, fmtPct, statusBadge, labelCells } from "../core.js";

const ACTIONS = {
  load: { label: "Load", verb: "Load {ref} into the model server (the least recently used adapter may be evicted)?", cls: "secondary" },
  unload: { label: "Unload", verb: "Unload {ref} from the model server? It stays registered.", cls: "secondary" },
  promote: { label: "Promote", verb: "Point {name}'s traffic (new runs naming {name}) at {ref}?", cls: "ok" },
  rollback: { label: "Roll back", verb: "Point {name}'s traffic back at its previous version?", cls: "danger" },
};

export function render(root) {
  const msg = el("p", { class: "small", role: "status", "data-testid": "model-action-msg" });
  const err = el("p", { class: "err", role: "alert", "data-testid": "models-error", hidden: true });
  const confirmBar = el("div", { class: "confirm-bar", "data-testid": "confirm-action", hidden: true });
  const modelsBox = el("div", { class: "table-wrap" }, el("p", { class: "muted", text: "Loading models…" }));
  const cacheBox = el("div", { "data-testid": "cache-stats" }, el("p", { class: "muted", text: "Loading…" }));
  const modelSelect = el("select", { id: "infer-model", "data-testid": "infer-model" });
  let models = [];

  const setError = (text) => { err.textContent = text || ""; err.hidden = !text; };

  async function loadModels() {
    try {
      models = await api("GET", "/api/v1/models");
    } catch (e) {
      setError(e.message);
      return;
    }
    modelsBox.replaceChildren(modelsTable(models, ask));
    fillModelSelect(modelSelect, models);
  }

  async function loadCache() {
    try {
      cacheBox.replaceChildren(cacheView(await api("GET", "/api/v1/models/cache")));
    } catch (e) {
      cacheBox.replaceChildren(el("p", { class: "err", text: e.message }));
    }
  }

  /** Inline confirmation (keyboard reachable, no modal): the action runs only after "Confirm". */
  function ask(action, row, trigger) {
    const ref = row.name;
    const name = ref.split("@")[0];
    const spec = ACTIONS[action];
    const path = action === "rollback" ? `/api/v1/models/adapters/${encodeURIComponent(name)}/rollback`
      : `/api/v1/models/adapters/${encodeURIComponent(ref)}/${action}`;
    const yes = el("button", { type: "button", class: spec.cls, "data-testid": "confirm-yes", text: `Confirm: ${spec.label.toLowerCase()}` });
    const no = el("button", { type: "button", class: "secondary", "data-testid": "confirm-no", text: "Keep as is" });
    const close = () => { confirmBar.hidden = true; confirmBar.replaceChildren(); if (trigger && trigger.isConnected) trigger.focus(); };
    no.addEventListener("click", close);
    yes.addEventListener("click", async () => {
      yes.disabled = no.disabled = true;
      setError("");
      msg.textContent = `${spec.label} ${action === "rollback" ? name : ref}…`;
      try {
        const out = await api("POST", path);
        msg.textContent = `${spec.label}: done. ${out.name} is ${out.status}${out.current ? " and current" : ""}.`;
      } catch (e) {
        msg.textContent = "";
        setError(`${spec.label} ${action === "rollback" ? name : ref} failed: ${e.message}`);
      }
      confirmBar.hidden = true;
      confirmBar.replaceChildren();
      await Promise.all([loadModels(), loadCache()]);
    });
    confirmBar.replaceChildren(el("span", { text: spec.verb.replaceAll("{ref}", ref).replaceAll("{name}", name) }),
      el("span", { class: "buttons" }, yes, no));
    confirmBar.hidden = false;
    yes.focus();
  }

  const registerForm = registerAdapterForm(async (body, status) => {
    setError("");
    try {
      const out = await api("POST", "/api/v1/models/adapters", body);
      status.textContent = `Registered ${out.name} (rank ${out.rank ?? "—"})${out.current ? ", current" : ""}.`;
      await loadModels();
      return true;
    } catch (e) {
      status.textContent = "";
      setError(`Register failed: ${e.message}`);
      return false;
    }
  });

  root.append(
    card(null,
      el("div", { class: "row" }, el("h2", { text: "Models" }), el("span", { class: "spacer" }),
        el("button", { type: "button", class: "secondary", "data-testid": "models-refresh", text: "Refresh",
          on: { click: () => { loadModels(); loadCache(); } } })),
      el("p", { class: "muted small", text: "The served base model and every registered adapter version. Plain NAME (and new runs naming it) uses the current version; registry actions need an admin token." }),
      confirmBar, err, msg, modelsBox),
    el("div", { class: "grid-even" },
      inferenceCard(modelSelect),
      el("div", { class: "stack" }, card("Adapter cache", cacheBox), card("Register an adapter", registerForm))),
  );
  loadModels();
  return every(5000, loadCache);
}

function modelsTable(rows, ask) {
  const actions = (m) => {
    if (m.kind !== "adapter") return el("span", { class: "muted small", text: m.kind === "base" && m.status === "loaded" ? "served" : m.path || "" });
    const b = (action) => {
      const btn = el("button", { type: "button", class: `${ACTIONS[action].cls} small`, dataset: { action },
        "aria-label": `${ACTIONS[action].label} ${action === "rollback" ? m.name.split("@")[0] : m.name}`, text: ACTIONS[action].label });
      btn.addEventListener("click", () => ask(action, m, btn));
      return btn;
    };
    return el("span", { class: "buttons" },
      m.status === "loaded" ? b("unload") : b("load"),
      m.current ? b("rollback") : b("promote"));
  };
  const profile = (m) => [m.input, m.actions, m.answer].filter(Boolean).join(" · ");
  const t = table([
    ["Name", (m) => el("span", {}, el("strong", { text: m.name }), profile(m) ? el("div", { class: "muted small", text: profile(m) }) : null)],
    ["Kind", (m) => m.kind],
    ["Status", (m) => el("span", {}, statusBadge(m.status), m.error ? el("div", { class: "err small", text: m.error }) : null)],
    ["Current", (m) => m.current ? el("span", { class: "status promoted", text: "current" }) : el("span", { class: "muted", text: "no" })],
    ["Rank", (m) => m.rank],
    ["Source", (m) => m.source],
    ["Created", (m) => fmtDate(m.created_at) || null],
    ["Last used", (m) => fmtDate(m.last_used_at) || null],
    ["Actions", actions],
  ], rows, { "data-testid": "models-table", class: "models-table stack-narrow" });
  labelCells(t);
  t.querySelectorAll("tbody tr").forEach((tr, i) => {
    const m = rows[i];
    tr.dataset.testid = m.kind === "adapter" ? "adapter-row" : "base-row";
    tr.dataset.name = m.name;
    tr.dataset.status = m.status;
    tr.dataset.current = String(!!m.current);
  });
  return t;
}

function fillModelSelect(select, models) {
  const keep = select.value;
  const base = models.filter((m) => m.kind === "base" && m.status === "loaded");
  const adapters = models.filter((m) => m.kind === "adapter" && m.status !== "failed");
  select.replaceChildren(
    ...base.map((m) => el("option", { value: `model:${m.name}`, text: `${m.name} (base)` })),
    ...adapters.map((m) => el("option", { value: `adapter:${m.name}`, text: `${m.name} (adapter${m.current ? ", current" : ""})` })));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

function cacheView(c) {
  const lookups = c.hits + c.misses;
  return el("div", {},
    el("dl", { class: "kv" },
      el("dt", { text: "Loaded" }), el("dd", { "data-testid": "cache-loaded" },
        `${c.loaded.length} of ${c.max_loras}`, c.loaded.length ? el("div", { class: "small", text: c.loaded.join(", ") }) : null),
      el("dt", { text: "Hits" }), el("dd", { "data-testid": "cache-hits", text: String(c.hits) }),
      el("dt", { text: "Misses" }), el("dd", { "data-testid": "cache-misses", text: String(c.misses) }),
      el("dt", { text: "Evictions" }), el("dd", { "data-testid": "cache-evictions", text: String(c.evictions) }),
      el("dt", { text: "Hit rate" }), el("dd", { text: lookups ? fmtPct(c.hits / lookups) : "—" })),
    el("div", { class: "progress", role: "img", "aria-label": `${c.loaded.length} of ${c.max_loras} adapter slots used` },
      el("div", { style: { width: `${c.max_loras ? (100 * c.loaded.length) / c.max_loras : 0}%` } })));
}

function inferenceCard(modelSelect) {
  const prompt = el("textarea", { id: "infer-prompt", "data-testid": "infer-prompt", rows: 4, required: true,
    placeholder: "Ask the model something…" });
  const maxTokens = el("input", { id: "infer-max-tokens", "data-testid": "infer-max-tokens", type: "number", min: 1, max: 4096, value: "128" });
  const temperature = el("input", { id: "infer-temperature", type: "number", min: 0, max: 2, step: "0.1", value: "0" });
  const submit = el("button", { type: "submit", "data-testid": "infer-submit", text: "Send" });
  const result = el("div", { "data-testid": "infer-result", "aria-live": "polite" });
  const form = el("form", { class: "form", "data-testid": "infer-form" },
    el("label", { for: "infer-prompt" }, "Prompt", prompt),
    el("label", { for: "infer-model" }, "Model", modelSelect),
    el("div", { class: "row infer-opts" },
      el("label", { for: "infer-max-tokens" }, "Max tokens", maxTokens),
      el("label", { for: "infer-temperature" }, "Temperature", temperature),
      el("span", { class: "spacer" }), submit),
    result);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const [kind, name] = [modelSelect.value.slice(0, modelSelect.value.indexOf(":")), modelSelect.value.slice(modelSelect.value.indexOf(":") + 1)];
    const body = { prompt: prompt.value, max_tokens: Number(maxTokens.value), temperature: Number(temperature.value) };
    if (kind === "adapter") body.adapter = name;
    else if (name) body.model = name;
    submit.disabled = true;
    result.replaceChildren(el("p", { class: "muted", text: "Waiting for the model…" }));
    try {
      const out = await api("POST", "/api/v1/inference", body);
      result.replaceChildren(
        el("h3", { text: "Answer" }),
        el("pre", { "data-testid": "infer-text", text: out.text || "(empty answer)" }),
        el("dl", { class: "kv" },
          el("dt", { text: "Model" }), el("dd", { "data-testid": "infer-model-used", text: out.adapter ? `${out.model} (adapter)` : out.model }),
          el("dt", { text: "Latency" }), el("dd", { "data-testid": "infer-latency", text: fmtMs(out.latency_ms) }),
          el("dt", { text: "First token" }), el("dd", { text: fmtMs(out.ttft_ms) }),
          el("dt", { text: "Tokens" }), el("dd", {},
            el("span", { "data-testid": "infer-prompt-tokens", text: String(out.prompt_tokens ?? "—") }), " prompt · ",
            el("span", { "data-testid": "infer-completion-tokens", text: String(out.completion_tokens ?? "—") }), " completion"),
          el("dt", { text: "Finish" }), el("dd", { text: out.finish_reason || "—" })));
    } catch (err) {
      result.replaceChildren(el("p", { class: "err", role: "alert", "data-testid": "infer-error", text: err.message }));
    } finally {
      submit.disabled = false;
    }
  });
  return card("Try a prompt", el("p", { class: "muted small", text: "One completion, straight from the model server (no browser, no agent loop)." }), form);
}

function registerAdapterForm(onSubmit) {
  const name = el("input", { id: "reg-name", "data-testid": "reg-name", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]*", maxlength: 100 });
  const path = el("input", { id: "reg-path", "data-testid": "reg-path", required: true, placeholder: "folder inside the adapters folder" });
  const promote = el("input", { id: "reg-promote", type: "checkbox", defaultChecked: true });
  const status = el("p", { class: "small", role: "status" });
  const form = el("form", { class: "form", "data-testid": "register-adapter" },
    el("label", { for: "reg-name" }, "Adapter name", name),
    el("label", { for: "reg-path" }, "PEFT folder", path),
    el("label", { class: "check", for: "reg-promote" }, promote, "Make it the current version"),
    el("div", { class: "buttons" }, el("button", { type: "submit", "data-testid": "reg-submit", text: "Register" })),
    status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await onSubmit({ name: name.value.trim(), path: path.value.trim(), promote: promote.checked }, status)) form.reset();
  });
  return form;
}
