// #/runs/ID: one run — live browser, timeline with expandable steps, plan, approvals and questions, replay.
"use strict";
import { FINISHED, api, apiBlobUrl, el, fmtAction, fmtMs, fmtTime, openStream, showError, statusBadge } from "../core.js";
import { liveView } from "../live.js";
import { planPanel, replayPanel, waitsPanel } from "../run_panels.js";

const RELOAD_ON = /^(run\.|plan\.|approval\.|input\.)/;

export function render(root, id) {
  let run = null, stream = null, live = null, stepsCache = null, reloading = null, stopped = false, planned = false;
  const blobs = [];
  const head = el("section", { class: "card run-head" });
  const side = el("div", { class: "stack" });
  const panels = el("div", { class: "stack" });
  const timeline = el("ol", { class: "timeline", dataset: { testid: "events" }, id: "events" });
  const stepItems = new Map();
  root.append(head, el("div", { class: "run-grid" }, el("div", { class: "stack" }, side, panels),
    el("section", { class: "card" }, el("h2", { text: "Timeline" }), timeline)));

  function drawHead() {
    const finished = FINISHED.has(run.status);
    const cancel = el("button", { type: "button", class: "danger", id: "cancel-run", dataset: { testid: "cancel-run" }, text: "Cancel run",
      disabled: finished || run.cancel_requested, on: { click: async () => {
        try { run = await api("POST", `/api/v1/runs/${id}/cancel`); drawHead(); }
        catch (e) { showError(e.status === 409 ? "This run has already finished; it cannot be cancelled." : e.message); }
      } } });
    const st = statusBadge(run.status);
    st.id = "run-status";
    st.dataset.testid = "run-status";
    head.replaceChildren(
      el("div", { class: "row" }, el("a", { href: "#/runs", text: "← Runs" }), el("h2", { text: run.task }), st, el("span", { class: "spacer" }), cancel),
      el("dl", { class: "kv small" },
        el("dt", { text: "Run" }), el("dd", {}, el("code", { text: run.id })),
        run.start_url ? [el("dt", { text: "Start URL" }), el("dd", { text: run.start_url })] : null,
        el("dt", { text: "Mode" }), el("dd", { text: `${run.mode}${run.agent_id ? ` · agent ${run.agent_id}` : ""} · ${run.policy.type || "model"}${run.model ? ` · ${run.model}` : ""} · max ${run.max_steps} steps` }),
        run.reason ? [el("dt", { text: "Reason" }), el("dd", { id: "run-reason", text: run.reason })] : null,
        run.result ? [el("dt", { text: "Result" }), el("dd", { id: "run-result", dataset: { testid: "run-result" }, text: run.result })] : null,
        run.reward != null ? [el("dt", { text: "Reward" }), el("dd", { text: String(run.reward) })] : null));
  }

  async function drawPanels() {
    const parts = [];
    if (FINISHED.has(run.status)) parts.push(await replayPanel(run));
    if (run.mode === "team") parts.push(await planPanel(run, reload, planned));
    const waits = await waitsPanel(run, reload);
    if (waits) parts.unshift(waits);
    if (!stopped) panels.replaceChildren(...parts);
  }

  async function reload() {
    if (reloading) return reloading;
    reloading = (async () => {
      try {
        run = await api("GET", `/api/v1/runs/${id}`);
        drawHead();
        if (FINISHED.has(run.status) && live) { live.node.remove(); live = null; }
        if (live) live.setRunning(run.status === "running");
        await drawPanels();
      } catch (e) { showError(e.message); } finally { reloading = null; }
    })();
    return reloading;
  }

  async function stepDetail(index) {
    if (!stepsCache || !stepsCache.some((s) => s.index === index)) stepsCache = await api("GET", `/api/v1/runs/${id}/steps`);
    return stepsCache.find((s) => s.index === index);
  }

  function stepItem(index) {
    let li = stepItems.get(index);
    if (!li) {
      li = el("li", { class: "step", dataset: { index } });
      stepItems.set(index, li);
      timeline.append(li);
    }
    return li;
  }

  function renderStep(ev) {
    const p = ev.payload;
    const li = stepItem(p.index);
    const human = p.action && p.action.actor === "human";
    li.className = `step ${human ? "human" : ""} ${p.error ? "bad" : ""}`;
    li.dataset.eventId = ev.id;
    li.dataset.type = ev.type;
    li.dataset.actor = human ? "human" : "agent";
    const obs = p.observation || {};
    const body = el("div");
    const details = el("details", {},
      el("summary", {}, el("span", { class: "when", text: fmtTime(ev.ts) }),
        el("strong", { text: `Step ${p.index} ` }), human ? el("span", { class: "badge warn", text: "person" }) : null, " ",
        fmtAction(p.action), p.error ? el("span", { class: "err", text: " ✗" }) : null,
        el("span", { class: "muted small", text: ` · ${fmtMs((p.timings_ms || {}).step)}` })),
      body);
    details.addEventListener("toggle", async () => {
      if (!details.open || body.childElementCount) return;
      const s = await stepDetail(p.index).catch((e) => { showError(e.message); return null; });
      const t = Object.entries(p.timings_ms || {}).filter(([, v]) => typeof v === "number");
      body.append(...[
        obs.url || obs.title ? el("div", { class: "muted small", text: `${obs.title || ""} <${obs.url || ""}>` }) : null,
        p.error ? el("div", { class: "err", text: `Feedback: ${p.error}` }) : null,
        el("h3", { text: "Parsed action" }), el("pre", { text: JSON.stringify(p.action, null, 1) }),
        s && s.raw_output ? [el("h3", { text: "Model's answer" }), el("pre", { dataset: { testid: "raw-output" }, text: s.raw_output })] : null,
        s && s.model ? el("div", { class: "muted small", text: `model: ${s.model}` }) : null,
        t.length ? [el("h3", { text: "Timings" }), el("div", { class: "small", text: t.map(([k, v]) => `${k} ${fmtMs(v)}`).join(" · ") })] : null,
      ].flat().filter(Boolean));
      if (p.has_screenshot) {
        const img = el("img", { class: "step-shot", alt: `step ${p.index} screenshot`, dataset: { testid: "step-shot" } });
        body.prepend(img);
        try { const u = await apiBlobUrl(`/api/v1/runs/${id}/steps/${p.index}/screenshot`); blobs.push(u); img.src = u; }
        catch (e) { img.replaceWith(el("div", { class: "err", text: e.message })); }
      }
    });
    li.replaceChildren(details);
  }

  function line(ev, cls, ...content) {
    timeline.append(el("li", { class: cls, dataset: { eventId: ev.id, type: ev.type } },
      el("span", { class: "when", text: fmtTime(ev.ts) }), ...content));
  }

  function onEvent(ev) {
    const p = ev.payload || {};
    switch (ev.type) {
      case "step.started": {
        const li = stepItem(p.index);
        if (!li.childElementCount) li.append(el("span", { class: "when", text: fmtTime(ev.ts) }), el("strong", { text: `Step ${p.index} ` }), el("span", { class: "muted", text: "deciding…" }));
        break;
      }
      case "step.completed": stepsCache = null; renderStep(ev); break;
      case "run.queued": line(ev, "", "Queued"); break;
      case "run.started": line(ev, "", p.resumed ? "Resumed" : "Started", p.worker ? el("span", { class: "muted small", text: ` on ${p.worker}` }) : null); break;
      case "run.message": line(ev, "", el("span", { class: "muted", text: `${p.from || "system"}: ` }), p.text || JSON.stringify(p)); break;
      case "run.status": line(ev, "", "Status → ", statusBadge(p.status || "?"), p.reason ? ` ${p.reason}` : ""); break;
      case "run.control":
        line(ev, p.by === "human" ? "human" : "", el("strong", { text: p.text || `control: ${p.by}` }));
        if (live) live.setControl(p.by);
        break;
      case "plan.proposed": planned = true; line(ev, "", `Plan proposed (revision ${p.revision ?? "?"}, ${(p.steps || []).length} steps)`); break;
      case "plan.decided": line(ev, "", `Plan ${p.action || p.decision || "decided"}${p.feedback ? `: ${p.feedback}` : ""}`); break;
      case "team.step":
        line(ev, p.phase === "finished" ? (p.ok ? "good" : "bad") : "", el("strong", { text: `${p.agent} · plan step ${(p.index ?? 0) + 1}: ` }),
          p.phase === "started" ? `started${p.attempt > 1 ? ` (try ${p.attempt})` : ""} — ${p.instruction}` : `${p.ok ? "done" : "not accepted"} — ${p.summary || ""}${p.feedback ? ` (${p.feedback})` : ""}`);
        break;
      case "approval.requested": line(ev, "", `Asks approval: ${p.reason || p.category || ""}`); break;
      case "approval.decided": line(ev, p.status === "approved" ? "good" : "bad", `Approval ${p.status}${p.reason ? `: ${p.reason}` : ""}`); break;
      case "input.requested": line(ev, "", `Asks: ${p.question || ""}`); break;
      case "input.answered": line(ev, "", `Answered${p.text ? `: ${p.text}` : ""}`); break;
      case "run.succeeded": case "run.failed": case "run.cancelled":
        line(ev, ev.type === "run.succeeded" ? "good" : "bad", el("strong", { text: ev.type.slice(4) }), p.reason ? ` — ${p.reason}` : "", p.result ? el("div", { text: `Result: ${p.result}` }) : null);
        break;
      default: line(ev, "", el("strong", { text: ev.type }), " ", el("span", { class: "muted small", text: JSON.stringify(p) }));
    }
    if (RELOAD_ON.test(ev.type) && ev.type !== "run.message" && ev.type !== "run.control") reload();
  }

  (async () => {
    await reload();
    if (!run || stopped) return;
    if (!FINISHED.has(run.status)) {
      live = liveView(id);
      side.append(live.node);
      live.setRunning(run.status === "running");
      live.refresh();
    }
    const status = el("span", { class: "muted small", dataset: { testid: "stream-state" } });
    head.querySelector(".row").append(status);
    stream = openStream(`/api/v1/runs/${id}/ws`, { frames: !!live, onEvent, onFrame: (m) => live && live.onFrame(m),
      onState: (s) => { status.textContent = s === "live" ? "● live" : s === "done" ? "" : s; if (s === "done") reload(); } });
  })();

  return () => {
    stopped = true;
    if (stream) stream.close();
    blobs.forEach(URL.revokeObjectURL);
  };
}

