// The dashboard's shell: sign-in, health badge, hash router (#/runs, #/runs/ID, #/models, …).
"use strict";
import { $, state, clearError, showError, el } from "./core.js";
import * as runs from "./pages/runs.js";
import * as run from "./pages/run.js";
import * as models from "./pages/models.js";
import * as training from "./pages/training.js";
import * as benchmarks from "./pages/benchmarks.js";
import * as agents from "./pages/agents.js";
import * as system from "./pages/system.js";

// Each page module exports render(root, params) → cleanup function (or nothing).
const ROUTES = [
  [/^#\/runs\/([\w-]+)$/, run, "runs"],
  [/^#\/runs$/, runs, "runs"],
  [/^#\/models$/, models, "models"],
  [/^#\/training\/([\w-]+)$/, training, "training"],
  [/^#\/training$/, training, "training"],
  [/^#\/benchmarks$/, benchmarks, "benchmarks"],
  [/^#\/agents$/, agents, "agents"],
  [/^#\/system$/, system, "system"],
];
let cleanup = null;

function route() {
  const hash = location.hash || "#/runs";
  const hit = ROUTES.map(([re, page, nav]) => [hash.match(re), page, nav]).find(([m]) => m);
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } cleanup = null; }
  clearError();
  const view = $("view");
  view.replaceChildren();
  for (const a of document.querySelectorAll("#nav a")) a.toggleAttribute("aria-current", !!hit && a.dataset.page === hit[2]);
  if (!hit) { view.append(el("p", { class: "card", text: `No page at ${hash}.` })); return; }
  const [m, page] = hit;
  document.body.dataset.page = hit[2];
  if (!state.token) {
    view.append(el("section", { class: "card signin-hint" },
      el("h2", { text: "Sign in" }),
      el("p", { text: "Enter an API token above (the admin token is printed by `make up` and kept in workspace/admin-token). It stays in this browser, never in a URL." })));
    return;
  }
  cleanup = page.render(view, ...m.slice(1)) || null;
}

async function refreshHealth() {
  const badge = $("health");
  try {
    const h = await (await fetch("/health")).json();
    const bad = Object.entries(h.checks || {}).filter(([, v]) => v !== "ok" && v !== "not configured").map(([k]) => k);
    badge.textContent = h.status === "ok" ? "healthy" : `degraded${bad.length ? ": " + bad.join(", ") : ""}`;
    badge.className = `badge ${h.status === "ok" ? "ok" : "warn"}`;
    badge.title = Object.entries(h.checks || {}).map(([k, v]) => `${k}: ${v}`).join("\n");
  } catch {
    badge.textContent = "unreachable";
    badge.className = "badge bad";
  }
}

async function signIn(token) {
  state.token = token;
  if (!token) { localStorage.removeItem("sparkpilot.token"); showSignedIn(false); route(); return; }
  // Check the token before keeping it: a wrong one gets the API's own 401 message.
  const res = await fetch("/api/v1/runs?limit=1", { headers: { Authorization: `Bearer ${token}` } });
  if (res.status === 401) {
    state.token = "";
    localStorage.removeItem("sparkpilot.token");
    route();
    showError("Unauthorized (401): the API token is missing or invalid. Sign in with a valid token above.");
    return;
  }
  localStorage.setItem("sparkpilot.token", token);
  $("token").value = "";
  showSignedIn(true);
  route();
}

$("token-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); });
$("sign-out").addEventListener("click", () => { showSignedIn(false); signIn(""); });
window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (e) => showError(String(e.reason && e.reason.message || e.reason)));
/** Signed in: only "Sign out" shows (the token never does); signed out: the token field and "Sign in". */
function showSignedIn(yes) {
  $("token").hidden = yes;
  $("save-token").hidden = yes;
  $("sign-out").hidden = !yes;
}
showSignedIn(!!state.token);
refreshHealth();
setInterval(refreshHealth, 5000);
route();
