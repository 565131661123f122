// The run page's panels: the team plan (approve, edit, reject), pending approvals and questions, the replay viewer.
"use strict";
import { api, apiBlobUrl, card, countdown, download, el, fmtAction, fmtMs, showError } from "./core.js";

const AGENTS = ["web", "coder", "file", "user"];

/** The team plan of `run`: its steps and ledger, and while it waits, approve / edit / reject. */
export async function planPanel(run, reload, proposed) {
  let plan;
  if (!proposed) return card("Plan", el("p", { class: "muted", text: "The orchestrator is planning…" }));
  try { plan = await api("GET", `/api/v1/runs/${run.id}/plan`); }
  catch (e) {
    if (e.status === 404) return card("Plan", el("p", { class: "muted", text: "The orchestrator is planning…" }));
    throw e;
  }
  const waiting = run.status === "awaiting_approval" && run.wait && run.wait.kind === "plan";
  const body = el("div", { dataset: { testid: "plan" } });
  const list = el("ol", { class: "plan-steps" }, plan.steps.map((s, i) => {
    const done = (plan.ledger || []).filter((l) => l.index === i).pop();
    return el("li", {}, el("strong", { text: s.agent }), " — ", s.instruction,
      s.expected ? el("div", { class: "muted small", text: `expected: ${s.expected}` }) : null,
      done ? el("div", { class: `small ${done.ok ? "" : "err"}`, text: `${done.ok ? "✓ done" : "✗ not accepted"}: ${done.summary || ""}` }) : null);
  }));
  body.append(el("p", { class: "muted small", text: `revision ${plan.revision} · ${plan.status}${plan.rejections ? ` · rejected ${plan.rejections}×` : ""}` }), list);
  if (plan.feedback && plan.feedback.length) body.append(el("p", { class: "small", text: `Feedback so far: ${plan.feedback.join(" / ")}` }));
  if (waiting) {
    const left = el("span", { class: "badge warn" });
    countdown(left, plan.deadline_at || run.wait_deadline_at);
    const decide = async (payload) => {
      try { await api("POST", `/api/v1/runs/${run.id}/plan`, payload); reload(); } catch (e) { showError(e.message); }
    };
    const feedback = el("textarea", { rows: 2, placeholder: "What should change?", "aria-label": "Feedback for the next plan", dataset: { testid: "plan-feedback" } });
    const editor = el("div", { class: "plan-edit", hidden: true });
    const rows = plan.steps.map((s) => ({ ...s }));
    const drawEditor = () => {
      editor.replaceChildren(...rows.map((s, i) => el("div", { class: "plan-row" },
        el("select", { "aria-label": `step ${i + 1} agent`, on: { change: (e) => { s.agent = e.target.value; } } },
          AGENTS.map((a) => el("option", { value: a, text: a, selected: a === s.agent }))),
        el("textarea", { rows: 2, "aria-label": `step ${i + 1} instruction`, value: s.instruction, dataset: { testid: "plan-instruction" },
          on: { input: (e) => { s.instruction = e.target.value; } } }),
        el("input", { "aria-label": `step ${i + 1} expected result`, value: s.expected || "", placeholder: "expected",
          on: { input: (e) => { s.expected = e.target.value; } } }),
        el("button", { type: "button", class: "secondary", text: "Remove", "aria-label": `remove step ${i + 1}`,
          disabled: rows.length === 1, on: { click: () => { rows.splice(i, 1); drawEditor(); } } }))),
      el("div", { class: "buttons" },
        el("button", { type: "button", class: "secondary", text: "Add step",
          on: { click: () => { rows.push({ agent: "web", instruction: "", expected: "" }); drawEditor(); } } }),
        el("button", { type: "button", class: "ok", text: "Save and approve", dataset: { testid: "plan-save" },
          on: { click: () => decide({ action: "edit", steps: rows.map(({ agent, instruction, expected }) => ({ agent, instruction, expected })) }) } })));
    };
    drawEditor();
    body.append(el("div", { class: "row" }, el("strong", { text: "Waiting for your approval" }), left),
      el("div", { class: "buttons" },
        el("button", { type: "button", class: "ok", text: "Approve plan", dataset: { testid: "plan-approve" }, on: { click: () => decide({ action: "approve" }) } }),
        el("button", { type: "button", class: "secondary", text: "Edit steps", on: { click: () => { editor.hidden = !editor.hidden; } } })),
      editor,
      el("div", { class: "form" }, el("label", {}, "Reject with feedback", feedback),
        el("button", { type: "button", class: "danger", text: "Reject", dataset: { testid: "plan-reject" },
          on: { click: () => decide({ action: "reject", feedback: feedback.value.trim() || null }) } })));
  }
  return card("Plan", body);
}

/** What the run waits on: an action's approval (with its screenshot) or a question, each with its countdown. */
export async function waitsPanel(run, reload) {
  const w = run.wait;
  if (!w || (w.kind !== "action" && w.kind !== "input")) return null;
  const box = el("div", { class: "wait" });
  const left = el("span", { class: "badge warn", dataset: { testid: "wait-countdown" } });
  if (w.kind === "input") {
    countdown(left, run.wait_deadline_at);
    const answer = el("textarea", { rows: 2, "aria-label": "Your answer", dataset: { testid: "answer-text" } });
    box.append(el("div", { class: "row" }, el("strong", { text: "The agent asks" }), left), el("p", { text: w.question }),
      el("div", { class: "form" }, answer, el("button", { type: "button", text: "Send answer", dataset: { testid: "answer-send" }, on: { click: async () => {
        try { await api("POST", `/api/v1/runs/${run.id}/input`, { text: answer.value }); reload(); } catch (e) { showError(e.message); }
      } } })));
    return el("section", { class: "card waits", dataset: { testid: "waits" } }, el("h2", { text: "Question" }), box);
  }
  const approvals = await api("GET", `/api/v1/runs/${run.id}/approvals`);
  const pending = approvals.find((a) => a.status === "pending");
  if (!pending) return null;
  countdown(left, pending.deadline_at);
  const why = el("input", { type: "text", placeholder: "reason (optional)", "aria-label": "Reason for your answer" });
  const decide = async (approve) => {
    try { await api("POST", `/api/v1/runs/${run.id}/approvals/${pending.id}`, { approve, reason: why.value.trim() || null }); reload(); }
    catch (e) { showError(e.message); }
  };
  box.append(el("div", { class: "row" }, el("strong", { text: `Approve ${pending.category.replace(/_/g, " ")}?` }), left),
    el("p", { text: pending.reason }), el("pre", { text: fmtAction(pending.action) }));
  if (pending.has_screenshot) {
    const img = el("img", { class: "step-shot", alt: "the page when the agent asked" });
    apiBlobUrl(`/api/v1/runs/${run.id}/approvals/${pending.id}/screenshot`).then((u) => { img.src = u; }).catch(() => img.remove());
    box.append(img);
  }
  box.append(el("div", { class: "buttons" }, why,
    el("button", { type: "button", class: "ok", text: "Approve", dataset: { testid: "approval-approve" }, on: { click: () => decide(true) } }),
    el("button", { type: "button", class: "danger", text: "Deny", dataset: { testid: "approval-deny" }, on: { click: () => decide(false) } })));
  return el("section", { class: "card waits", dataset: { testid: "waits" } }, el("h2", { text: "Approval needed" }), box);
}

/** A finished run's replay: scrub through its steps with their screenshots; download the trajectory. */
export async function replayPanel(run) {
  const steps = await api("GET", `/api/v1/runs/${run.id}/steps`);
  const dl = el("button", { type: "button", class: "secondary", text: "Download trajectory", dataset: { testid: "trajectory-download" },
    on: { click: () => download(`/api/v1/runs/${run.id}/trajectory`, `trajectory-${run.id}.json`).catch((e) => showError(e.message)) } });
  const head = el("div", { class: "row" }, el("h2", { text: "Replay" }), el("span", { class: "spacer" }), dl);
  if (!steps.length) return el("section", { class: "card replay" }, head, el("p", { class: "muted", text: "This run recorded no steps." }));
  const urls = new Map();
  const img = el("img", { class: "replay-shot", alt: "", dataset: { testid: "replay-shot" } });
  const info = el("div", { dataset: { testid: "replay-info" } });
  const slider = el("input", { type: "range", min: 0, max: steps.length - 1, value: 0, "aria-label": "Step", dataset: { testid: "replay-slider" } });
  const label = el("span", { class: "muted small" });
  const show = async (i) => {
    const s = steps[i];
    slider.value = i;
    label.textContent = `step ${i + 1} of ${steps.length}`;
    info.replaceChildren(...[
      el("div", { class: "row" }, el("span", { class: `badge ${s.actor === "human" ? "warn" : ""}`, text: s.actor }),
        el("strong", { text: fmtAction(s.action) }), el("span", { class: "muted small", text: fmtMs((s.timings_ms || {}).step) })),
      s.observation && s.observation.url ? el("div", { class: "muted small", text: s.observation.url }) : null,
      s.error ? el("div", { class: "err", text: s.error }) : null,
      s.raw_output ? el("pre", { text: s.raw_output }) : null].filter(Boolean));
    img.alt = `step ${s.index} screenshot`;
    if (!s.has_screenshot) { img.removeAttribute("src"); return; }
    if (!urls.has(i)) urls.set(i, apiBlobUrl(`/api/v1/runs/${run.id}/steps/${s.index}/screenshot`));
    try { const u = await urls.get(i); if (Number(slider.value) === i) img.src = u; } catch (e) { showError(e.message); }
  };
  slider.addEventListener("input", () => show(Number(slider.value)));
  const nav = el("div", { class: "row" },
    el("button", { type: "button", class: "secondary", text: "◀ Previous", "aria-label": "previous step", on: { click: () => show(Math.max(0, Number(slider.value) - 1)) } }),
    slider,
    el("button", { type: "button", class: "secondary", text: "Next ▶", "aria-label": "next step", on: { click: () => show(Math.min(steps.length - 1, Number(slider.value) + 1)) } }),
    label);
  show(0);
  return el("section", { class: "card replay", dataset: { testid: "replay" } }, head, nav, img, info);
}
