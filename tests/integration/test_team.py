"""Team runs on the real gateway, Celery worker, Chromium and sandbox; only the model's answers are scripted.

Every model call of a run (plan, the web agent's actions, code, file operations, the validator's
verdicts, the final answer) carries the run's task, so the scripted server answers each run from its
own script (`model.routes[MARKER]`). Two stacks: `main` with long waits, `short` with 3-second
deadlines for the timeout paths.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.helpers import Stack, scripted_env, sse_collect, wait_for, wait_terminal, ws_collect
from tests.scripted_model import ScriptedModel

MODEL = "scripted-team"
DONE = json.dumps({"done": True, "feedback": ""})
PRICES = [12, 7, 23, 5]  # tests/pages/prices.html
SUM_CODE = ("import json, re\nsteps = json.load(open('context.json'))\ntext = steps[0]['data']['text']\n"
            "print(sum(int(n) for n in re.findall(r'\\b\\d+\\b', text)))\n")


def plan(*steps: tuple[str, str, str]) -> str:
    return json.dumps({"steps": [{"agent": a, "instruction": i, "expected": e} for a, i, e in steps]})


def act(name: str, **args: object) -> str:
    return json.dumps({"action": {"name": name, **args}})


def answer(text: str) -> str:
    return json.dumps({"answer": text})


LIST_FILES = json.dumps({"operation": "list", "path": "", "content": ""})


@dataclass
class Team:
    main: Stack
    short: Stack
    model: ScriptedModel
    hooks: list[dict] = field(default_factory=list)


def _webhook(received: list[dict]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def team(base_env: dict[str, str]) -> Iterator[Team]:
    """Two private stacks on one scripted model; workspaces the sandbox's user can reach."""
    tmp = Path(tempfile.mkdtemp(prefix="sparkpilot-team-"))
    os.chmod(tmp, 0o711)
    received: list[dict] = []
    hook = _webhook(received)
    stacks = []
    with ScriptedModel(MODEL, []) as model:
        for name, extra in (("main", {"SPARKPILOT_WEBHOOK_URL": f"http://127.0.0.1:{hook.server_address[1]}/hook"}),
                            ("short", {"SPARKPILOT_PLAN_TIMEOUT_S": "3", "SPARKPILOT_APPROVAL_TIMEOUT_S": "3",
                                       "SPARKPILOT_INPUT_TIMEOUT_S": "3", "SPARKPILOT_TEAM_MAX_REPLANS": "0",
                                       "SPARKPILOT_TEAM_STEP_RETRIES": "1"})):
            folder = tmp / name
            folder.mkdir(mode=0o711)
            env = scripted_env(base_env, folder, model.url, MODEL, **{
                "SPARKPILOT_TEAM_MAX_REPLANS": "1", "SPARKPILOT_TEAM_STEP_RETRIES": "0", **extra})
            stack = Stack(env=env, logdir=folder)
            stacks.append(stack)
        try:
            for stack in stacks:
                stack.start_gateway()
                stack.start_worker(concurrency=2)
            yield Team(stacks[0], stacks[1], model, received)
        finally:
            for stack in stacks:
                stack.stop()
            hook.shutdown()
            for log in sorted(tmp.glob("*/*.log")):
                print(f"\n--- {log.parent.name}/{log.name} (tail) ---\n{log.read_text(errors='replace')[-3000:]}")


def client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)


def start(api: httpx.Client, model: ScriptedModel, marker: str, script: list[str], **body: object) -> str:
    model.routes[marker] = list(script)
    resp = api.post("/api/v1/runs", json={"task": f"{marker}: {body.pop('task', 'do the thing')}", "mode": "team",
                                          **body})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def wait_waiting(api: httpx.Client, run_id: str, status: str, kind: str, timeout: float = 60) -> dict:
    """Poll until the run waits in `status` for `kind` (plan, action or input)."""
    def check() -> dict | None:
        run = api.get(f"/api/v1/runs/{run_id}").json()
        assert run["status"] not in ("succeeded", "failed", "cancelled"), run
        return run if run["status"] == status and (run["wait"] or {}).get("kind") == kind else None
    return wait_for(check, timeout, f"run {run_id} to wait for {kind}")


def types(api: httpx.Client, run_id: str) -> list[str]:
    return [t for _, t, _ in sse_collect(api, run_id)]


def test_team_journey_plan_approve_web_coder_file_answer(team: Team, pages) -> None:  # noqa: ANN001
    script = [plan(("web", "Open the price list and read the prices", "the prices"),
                   ("coder", "Add up the prices", "the total"),
                   ("file", "Write report.md with the total", "report.md")),
              act("goto", url=pages.url + "/prices.html"), act("finish", answer="I read the price list"), DONE,
              json.dumps({"code": SUM_CODE}), DONE,
              json.dumps({"operation": "write", "path": "report.md", "content": "# Prices\nTotal: 47\n"}), DONE,
              answer("The prices add up to 47.")]
    with client(team.main) as api:
        run_id = start(api, team.model, "JOURNEY", script, task="sum the prices on the price list, write a report",
                       start_url=pages.url + "/index.html")
        live_sse: list = []
        live_ws: list = []
        threads = [threading.Thread(target=lambda: live_sse.extend(sse_collect(client(team.main), run_id))),
                   threading.Thread(target=lambda: live_ws.extend(asyncio.run(ws_collect(
                       team.main.base_url.replace("http", "ws") + f"/api/v1/runs/{run_id}/ws", team.main.token))[0]))]
        for t in threads:
            t.start()

        run = wait_waiting(api, run_id, "awaiting_approval", "plan")
        assert run["wait_deadline_at"] is not None
        proposed = api.get(f"/api/v1/runs/{run_id}/plan").json()
        assert proposed["status"] == "proposed" and proposed["revision"] == 1 and proposed["deadline_at"]
        assert [s["agent"] for s in proposed["steps"]] == ["web", "coder", "file"]
        # The webhook is called right after the wait is committed: it may land just after the status shows.
        wait_for(lambda: any(h["event"] == "plan.proposed" and h["run_id"] == run_id for h in team.hooks), 10, "webhook")
        approved = api.post(f"/api/v1/runs/{run_id}/plan", json={"action": "approve"})
        assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text

        wait_waiting(api, run_id, "awaiting_approval", "action")  # run_code is `ask` in config/approvals.json
        pending = api.get(f"/api/v1/runs/{run_id}/approvals").json()
        assert [(a["category"], a["status"]) for a in pending] == [("run_code", "pending")]
        assert pending[0]["action"]["args"]["code"] == SUM_CODE
        wait_for(lambda: any(h["event"] == "approval.requested" and h["approval_id"] == pending[0]["id"]
                             for h in team.hooks), 10, "the approval's webhook")
        granted = api.post(f"/api/v1/runs/{run_id}/approvals/{pending[0]['id']}", json={"approve": True})
        assert granted.status_code == 200 and granted.json()["status"] == "approved", granted.text

        run = wait_terminal(api, run_id, timeout=120)
        for t in threads:
            t.join(60)
        assert run["status"] == "succeeded", run
        assert run["result"] == "The prices add up to 47."

        ledger = api.get(f"/api/v1/runs/{run_id}/plan").json()["ledger"]
        assert [(e["agent"], e["ok"]) for e in ledger] == [("web", True), ("coder", True), ("file", True)]
        assert ledger[0]["data"]["url"] == pages.url + "/prices.html"  # the web step really went there
        assert ledger[1]["data"]["stdout"].strip() == str(sum(PRICES))  # computed in the sandbox from the page's text
        report = api.get(f"/api/v1/runs/{run_id}/files/report.md")
        assert report.status_code == 200 and report.text == "# Prices\nTotal: 47\n"
        steps = api.get(f"/api/v1/runs/{run_id}/steps").json()
        assert [s["action"]["name"] for s in steps] == ["goto", "finish"]

        stored = sse_collect(api, run_id)
        assert [(i, t) for i, t, _ in live_sse] == [(i, t) for i, t, _ in stored]  # live SSE: every event, in order
        assert [(e["id"], e["type"]) for e in live_ws] == [(i, t) for i, t, _ in stored]  # and the WebSocket too
        names = [t if t != "run.status" else f"status:{d['payload']['status']}" for _, t, d in stored]
        expected = ["run.queued", "run.started", "plan.proposed", "status:awaiting_approval", "plan.decided",
                    "status:queued", "run.started", "team.step", "step.started", "step.completed", "team.step",
                    "team.step", "status:awaiting_approval", "approval.requested", "approval.decided", "status:running",
                    "team.step", "team.step", "team.step", "run.message", "run.succeeded"]
        it = iter(names)
        assert all(name in it for name in expected), names  # in this order (other events may sit between)

        saved = api.get("/api/v1/plans", params={"task": "JOURNEY: sum the prices on the price list"}).json()
        assert saved["total"] >= 1 and saved["items"][0]["source_run_id"] == run_id
        assert [s["agent"] for s in saved["items"][0]["steps"]] == ["web", "coder", "file"]

        # A similar task later: the planner is shown the saved plan as a starting point.
        again = start(api, team.model, "SIMILAR", [plan(("web", "Read the prices", ""))],
                      task="sum the prices on the price list, write a report")
        wait_waiting(api, again, "awaiting_approval", "plan")
        [prompt] = [json.dumps(r["messages"]) for r in team.model.requests if "SIMILAR" in json.dumps(r)]
        assert "A plan that worked for a similar task" in prompt and "Add up the prices" in prompt
        assert api.get("/api/v1/plans").json()["items"][0]["uses"] == 1
        assert api.post(f"/api/v1/runs/{again}/cancel").json()["status"] == "cancelled"
        source = [d["payload"]["source"] for _, t, d in sse_collect(api, again) if t == "plan.proposed"]
        assert source == ["model (from a saved plan)"]


def test_edit_is_validated_then_the_edited_plan_runs(team: Team) -> None:
    with client(team.main) as api:
        run_id = start(api, team.model, "EDITED", [plan(("web", "look around", "")), LIST_FILES, DONE,
                                                   answer("Listed.")])
        wait_waiting(api, run_id, "awaiting_approval", "plan")
        bad = api.post(f"/api/v1/runs/{run_id}/plan", json={"action": "edit", "steps": [{"agent": "robot",
                                                                                         "instruction": "x"}]})
        assert bad.status_code == 422 and bad.json()["error"]["type"] == "validation_error", bad.text
        assert api.post(f"/api/v1/runs/{run_id}/plan", json={"action": "edit"}).status_code == 422
        assert api.post(f"/api/v1/runs/{run_id}/plan", json={"action": "reject"}).status_code == 422  # no feedback
        unchanged = api.get(f"/api/v1/runs/{run_id}/plan").json()
        assert unchanged["status"] == "proposed" and unchanged["revision"] == 1
        assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "awaiting_approval"

        edited = api.post(f"/api/v1/runs/{run_id}/plan", json={"action": "edit", "steps": [
            {"agent": "file", "instruction": "List the run's files", "expected": "a listing"}]})
        assert edited.status_code == 200 and edited.json()["revision"] == 2 and edited.json()["status"] == "approved"
        again = api.post(f"/api/v1/runs/{run_id}/plan", json={"action": "approve"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_awaiting_plan"
        run = wait_terminal(api, run_id, timeout=60)
        assert run["status"] == "succeeded", run
        assert [e["agent"] for e in api.get(f"/api/v1/runs/{run_id}/plan").json()["ledger"]] == ["file"]


def test_reject_with_feedback_replans_with_it(team: Team) -> None:
    with client(team.main) as api:
        run_id = start(api, team.model, "REJECTED", [plan(("web", "browse", "")), plan(("file", "List files", "")),
                                                     LIST_FILES, DONE, answer("Done.")])
        wait_waiting(api, run_id, "awaiting_approval", "plan")
        rejected = api.post(f"/api/v1/runs/{run_id}/plan", json={"action": "reject", "feedback": "Use the file agent"})
        assert rejected.status_code == 200 and rejected.json()["rejections"] == 1
        wait_for(lambda: api.get(f"/api/v1/runs/{run_id}/plan").json()["revision"] == 2, 60, "the second plan")
        second = api.get(f"/api/v1/runs/{run_id}/plan").json()
        assert [s["agent"] for s in second["steps"]] == ["file"] and second["feedback"] == ["Use the file agent"]
        planner_prompts = [json.dumps(r["messages"]) for r in team.model.requests if "REJECTED" in json.dumps(r)
                           and "Plan the user's task" in json.dumps(r["messages"])]
        assert len(planner_prompts) == 2 and "Use the file agent" in planner_prompts[1]
        assert api.post(f"/api/v1/runs/{run_id}/plan", json={"action": "approve"}).status_code == 200
        assert wait_terminal(api, run_id, timeout=60)["status"] == "succeeded"


def test_denied_action_is_told_to_the_orchestrator_which_replans(team: Team) -> None:
    with client(team.main) as api:
        run_id = start(api, team.model, "DENIED", [plan(("coder", "Compute 6*7", "42")), json.dumps({"code": "print(6*7)"}),
                                                   plan(("file", "List files", "")), LIST_FILES, DONE, answer("No code.")],
                       auto_approve=True)
        wait_waiting(api, run_id, "awaiting_approval", "action")
        aid = api.get(f"/api/v1/runs/{run_id}/approvals").json()[0]["id"]
        denied = api.post(f"/api/v1/runs/{run_id}/approvals/{aid}", json={"approve": False, "reason": "no code today"})
        assert denied.status_code == 200 and denied.json()["status"] == "denied"
        twice = api.post(f"/api/v1/runs/{run_id}/approvals/{aid}", json={"approve": True})
        assert twice.status_code == 409 and twice.json()["error"]["code"] == "approval_decided"
        run = wait_terminal(api, run_id, timeout=60)
        assert run["status"] == "succeeded", run
        events = sse_collect(api, run_id)
        failed = [d["payload"] for _, t, d in events if t == "team.step" and d["payload"].get("phase") == "finished"]
        assert failed[0]["agent"] == "coder" and not failed[0]["ok"] and "no code today" in failed[0]["summary"]
        assert "plan.revised" in [t for _, t, _ in events]
        assert [e["agent"] for e in api.get(f"/api/v1/runs/{run_id}/plan").json()["ledger"]] == ["file"]


def test_question_answered_by_the_person(team: Team) -> None:
    with client(team.main) as api:
        run_id = start(api, team.model, "ASKED", [plan(("user", "Which colour should the report use?", "a colour")),
                                                  DONE, answer("Blue it is.")], auto_approve=True)
        run = wait_waiting(api, run_id, "awaiting_input", "input")
        assert run["wait"]["question"] == "Which colour should the report use?"
        metrics = api.get("/metrics").text  # a waiting run shows as waiting capacity
        assert 'sparkpilot_runs{status="awaiting_input"} 1.0' in metrics, metrics[:2000]
        answered = api.post(f"/api/v1/runs/{run_id}/input", json={"text": "blue"})
        assert answered.status_code == 200, answered.text
        late = api.post(f"/api/v1/runs/{run_id}/input", json={"text": "red"})  # it is running again
        assert late.status_code == 409 and late.json()["error"]["code"] == "not_awaiting_input"
        run = wait_terminal(api, run_id, timeout=60)
        assert run["status"] == "succeeded" and run["result"] == "Blue it is."
        assert "blue" in api.get(f"/api/v1/runs/{run_id}/plan").json()["ledger"][0]["summary"]
        assert {"input.requested", "input.answered"} <= set(types(api, run_id))


def test_cancel_while_waiting_for_plan_action_or_answer(team: Team) -> None:
    with client(team.main) as api:
        plan_wait = start(api, team.model, "CANCELPLAN", [plan(("web", "browse", ""))])
        wait_waiting(api, plan_wait, "awaiting_approval", "plan")
        resp = api.post(f"/api/v1/runs/{plan_wait}/cancel")
        assert resp.status_code == 200 and resp.json()["status"] == "cancelled"  # no worker holds it: at once

        action_wait = start(api, team.model, "CANCELACTION", [plan(("coder", "Compute", "")), json.dumps({"code": "1"})],
                            auto_approve=True)
        wait_waiting(api, action_wait, "awaiting_approval", "action")
        assert api.post(f"/api/v1/runs/{action_wait}/cancel").status_code == 200
        assert wait_terminal(api, action_wait, timeout=30)["status"] == "cancelled"
        approval = api.get(f"/api/v1/runs/{action_wait}/approvals").json()[0]
        assert approval["status"] == "denied" and approval["decided_reason"] == "the run was cancelled"

        input_wait = start(api, team.model, "CANCELINPUT", [plan(("user", "Anything?", ""))], auto_approve=True)
        wait_waiting(api, input_wait, "awaiting_input", "input")
        assert api.post(f"/api/v1/runs/{input_wait}/cancel").status_code == 200
        assert wait_terminal(api, input_wait, timeout=30)["status"] == "cancelled"


def test_plan_left_unanswered_fails_the_run(team: Team) -> None:
    with client(team.short) as api:
        run_id = start(api, team.model, "PLANTIMEOUT", [plan(("web", "browse", ""))])
        run = wait_terminal(api, run_id, timeout=30)
        assert run["status"] == "failed" and run["reason"] == "plan approval timed out"
        late = api.post(f"/api/v1/runs/{run_id}/plan", json={"action": "approve"})
        assert late.status_code == 409


def test_unanswered_approval_is_a_deny(team: Team) -> None:
    with client(team.short) as api:
        run_id = start(api, team.model, "APPROVALTIMEOUT", [plan(("coder", "Compute", "")),
                                                            json.dumps({"code": "print(1)"}),
                                                            json.dumps({"code": "print(2)"})], auto_approve=True)
        run = wait_terminal(api, run_id, timeout=40)
        assert run["status"] == "failed" and "no answer before the approval's deadline" in run["reason"], run
        approvals = api.get(f"/api/v1/runs/{run_id}/approvals").json()  # the step's try and its one retry
        assert [(a["status"], a["action"]["args"]["code"]) for a in approvals] == [("timed_out", "print(1)"),
                                                                                 ("timed_out", "print(2)")]
        assert all(a["decided_at"] for a in approvals)


def test_unanswered_question_goes_on_without_an_answer(team: Team) -> None:
    with client(team.short) as api:
        run_id = start(api, team.model, "INPUTTIMEOUT", [plan(("user", "Which colour?", "")), DONE,
                                                         answer("No colour was given.")], auto_approve=True)
        run = wait_terminal(api, run_id, timeout=30)
        assert run["status"] == "succeeded", run
        assert api.get(f"/api/v1/runs/{run_id}/plan").json()["ledger"][0]["summary"] == "the person did not answer"
        answered = [d["payload"] for _, t, d in sse_collect(api, run_id) if t == "input.answered"]
        assert answered == [{"text": None, "timed_out": True}]


@pytest.mark.parametrize("approve", [True, False])
def test_direct_run_asks_before_submitting_a_password(team: Team, pages, approve: bool) -> None:  # noqa: ANN001
    with client(team.main) as api:
        resp = api.post("/api/v1/runs", json={"task": "sign in", "start_url": pages.url + "/login.html",
                                              "policy": "replay", "actions": [{"name": "press", "key": "Enter"},
                                                                             {"name": "finish", "answer": "ok"}]})
        run_id = resp.json()["id"]
        wait_waiting(api, run_id, "awaiting_approval", "action")
        [pending] = api.get(f"/api/v1/runs/{run_id}/approvals").json()
        assert pending["category"] == "submit_sensitive" and "a password" in pending["reason"]
        assert pending["has_screenshot"]
        shot = api.get(f"/api/v1/runs/{run_id}/approvals/{pending['id']}/screenshot")
        assert shot.status_code == 200 and shot.content[:4] == b"\x89PNG"
        assert api.post(f"/api/v1/runs/{run_id}/approvals/{pending['id']}", json={"approve": approve}).status_code == 200
        assert wait_terminal(api, run_id, timeout=60)["status"] == "succeeded"
        steps = api.get(f"/api/v1/runs/{run_id}/steps").json()
        if approve:
            assert steps[0]["error"] is None and steps[1]["observation"]["title"] == "signed in as ada"
        else:
            assert "a person did not approve this" in steps[0]["error"]
            assert steps[1]["observation"]["title"] == "Sign in"


def test_bad_team_input_gets_clear_errors_and_changes_nothing(team: Team, pages) -> None:  # noqa: ANN001
    with client(team.main) as api:
        for body, words in (({"task": "x", "mode": "team", "policy": "replay", "actions": ["finish()"]}, "team run"),
                            ({"task": "x", "auto_approve": True}, "auto_approve"),
                            ({"task": "x", "mode": "crowd"}, "mode"),
                            ({"task": "x", "approval_policy": {"run_code": "maybe"}}, "approval_policy")):
            resp = api.post("/api/v1/runs", json=body)
            assert resp.status_code == 422 and words in resp.text, resp.text
        direct = api.post("/api/v1/runs", json={"task": "x", "start_url": pages.url + "/index.html",
                                                "policy": "replay", "actions": [{"name": "finish", "answer": "ok"}]}).json()
        assert api.get(f"/api/v1/runs/{direct['id']}/plan").json()["error"]["code"] == "no_plan"
        resp = api.post(f"/api/v1/runs/{direct['id']}/plan", json={"action": "approve"})
        assert resp.status_code == 409 and resp.json()["error"]["code"] == "not_awaiting_plan"
        resp = api.post(f"/api/v1/runs/{direct['id']}/approvals/nope", json={"approve": True})
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "approval_not_found"
        resp = api.post(f"/api/v1/runs/{direct['id']}/input", json={"text": "hi"})
        assert resp.status_code == 409 and resp.json()["error"]["code"] == "not_awaiting_input"
        assert api.post(f"/api/v1/runs/{direct['id']}/input", json={"text": ""}).status_code == 422
        assert api.delete("/api/v1/plans/nope").status_code == 404
        assert wait_terminal(api, direct["id"])["status"] == "succeeded"  # none of that touched the run


def test_an_invalid_plan_from_the_model_becomes_a_one_step_plan_to_review(team: Team) -> None:
    with client(team.main) as api:
        run_id = start(api, team.model, "CUTOFF", ['{"steps": [{"agent": "web", "instruction": "1.1.1.1.1'],
                       task="read the page")
        wait_waiting(api, run_id, "awaiting_approval", "plan")
        proposed = api.get(f"/api/v1/runs/{run_id}/plan").json()
        assert proposed["steps"] == [{"agent": "web", "instruction": "CUTOFF: read the page", "expected": ""}]
        assert api.post(f"/api/v1/runs/{run_id}/cancel").json()["status"] == "cancelled"
        [source] = [d["payload"]["source"] for _, t, d in sse_collect(api, run_id) if t == "plan.proposed"]
        assert source.startswith("fallback: the model's plan is not valid")


def test_a_result_the_validator_refuses_is_retried_with_its_feedback(team: Team) -> None:
    def write(path: str) -> str:
        return json.dumps({"operation": "write", "path": path, "content": "notes"})

    with client(team.short) as api:
        run_id = start(api, team.model, "RETRIED", [plan(("file", "Write the notes", "summary.md exists")), write("notes.md"),
                                                    json.dumps({"done": False, "feedback": "name it summary.md"}),
                                                    write("summary.md"), DONE, answer("Written.")], auto_approve=True)
        run = wait_terminal(api, run_id, timeout=40)
        assert run["status"] == "succeeded", run
        [entry] = api.get(f"/api/v1/runs/{run_id}/plan").json()["ledger"]
        assert entry["attempt"] == 2 and entry["data"]["path"] == "summary.md"
        file_prompts = [json.dumps(r["messages"]) for r in team.model.requests
                        if "RETRIED" in json.dumps(r) and "You handle files" in json.dumps(r)]
        assert len(file_prompts) == 2 and "not accepted: name it summary.md" in file_prompts[1]
        finished = [d["payload"] for _, t, d in sse_collect(api, run_id)
                    if t == "team.step" and d["payload"]["phase"] == "finished"]
        assert [(f["attempt"], f["ok"], f.get("feedback")) for f in finished] == [(1, False, "name it summary.md"),
                                                                                 (2, True, None)]
