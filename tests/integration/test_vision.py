"""Fara-7B's path with scripted answers: the real gateway, Celery worker and Chromium; only the model's answer is fake.

The scripted server stands where vLLM would, under the served name `microsoft/Fara-7B`, so the
worker picks Fara's profile (screenshots in, <tool_call> coordinates out) exactly as it would
under compose. The page puts its elements at fixed CSS positions, the profile shrinks the
screenshot (scale ~1.9), and the answers give coordinates in the shrunk image: a click lands on
the right element only if the worker scaled them back correctly.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from agent.vision import smart_resize
from tests.helpers import Stack, wait_terminal
from tests.scripted_model import ScriptedModel

MODEL = "microsoft/Fara-7B"
VIEWPORT = (1000, 700)
MAX_PIXELS = 256 * 28 * 28  # forces a real downscale of the 1000x700 screenshot
IMG_H, IMG_W = smart_resize(VIEWPORT[1], VIEWPORT[0], 28, 3136, MAX_PIXELS)
GO = (600 + 60, 400 + 25)  # centre of #go in CSS pixels (tests/pages/vision.html)
NAME = (100 + 150, 100 + 20)  # centre of #name


def to_image(x: float, y: float) -> list[int]:
    """CSS pixels → the model's (resized screenshot) pixels, as Fara would answer."""
    return [round(x * IMG_W / VIEWPORT[0]), round(y * IMG_H / VIEWPORT[1])]


def call(arguments: dict, thought: str = "I look at the screenshot.") -> str:
    return f'{thought}\n<tool_call>\n{json.dumps({"name": "computer_use", "arguments": arguments})}\n</tool_call>'


ANSWERS = [
    call({"action": "left_click", "coordinate": [IMG_W + 200, 10]}),  # off the screenshot: a guard error
    call({"action": "left_click", "coordinate": to_image(*GO)}),
    call({"action": "type", "text": "Ada", "coordinate": to_image(*NAME), "press_enter": True}),
    call({"action": "terminate", "status": "success"}, thought="The name is typed and submitted. Done."),
]


@pytest.fixture(scope="module")
def fara_stack(base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, ScriptedModel, Path]]:
    """A private gateway + worker whose model server is the scripted Fara."""
    from tests.helpers import migrated

    tmp = tmp_path_factory.mktemp("fara")
    profiles = tmp / "models.json"
    profiles.write_text(json.dumps({"profiles": [{"match": "*fara*", "input": "text+image", "actions": "coordinates",
                                                  "answer": "fara", "max_pixels": MAX_PIXELS, "max_images": 3}]}))
    tag = uuid.uuid4().hex[:8]
    env = dict(base_env, DATABASE_URL=f"sqlite:///{tmp / 'fara.db'}", SPARKPILOT_QUEUE_NAME=f"test-fara-{tag}",
               SPARKPILOT_KEY_PREFIX=f"sptest-fara-{tag}", SPARKPILOT_INFERENCE_MODEL=MODEL,
               SPARKPILOT_MODEL_PROFILES=str(profiles), SPARKPILOT_VIEWPORT_WIDTH=str(VIEWPORT[0]),
               SPARKPILOT_VIEWPORT_HEIGHT=str(VIEWPORT[1]), SPARKPILOT_AGENT_MAX_TOKENS="512",
               SPARKPILOT_TRAJECTORIES_DIR=str(tmp / "trajectories"),
               SPARKPILOT_DEFAULT_MAX_STEPS="6", SPARKPILOT_MAX_STEPS_LIMIT="9", SPARKPILOT_LOG_LEVEL="DEBUG")
    migrated(env["DATABASE_URL"])
    with ScriptedModel(MODEL, []) as model:
        stack = Stack(env=dict(env, SPARKPILOT_INFERENCE_URL=model.url), logdir=tmp)
        try:
            stack.start_gateway()
            stack.start_worker(concurrency=1)
            yield stack, model, tmp / "trajectories"
        finally:
            stack.stop()
            for log in sorted(tmp.glob("*.log")):
                print(f"\n--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-3000:]}")


def test_fara_run_clicks_and_types_where_the_scaled_coordinates_point(fara_stack, pages) -> None:  # noqa: ANN001
    stack, model, trajectories = fara_stack
    task = "Press Go, then enter the name Ada."
    model.routes[task] = list(ANSWERS)  # this run's script, whatever the module's other tests asked before
    before = len(model.requests)
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30) as api:
        resp = api.post("/api/v1/runs", json={"task": task,
                                              "start_url": pages.url + "/vision.html", "max_steps": 8})
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["id"]
        run = wait_terminal(api, run_id, timeout=120)
        steps = api.get(f"/api/v1/runs/{run_id}/steps").json()
        steps = steps.get("items", steps) if isinstance(steps, dict) else steps
        records = api.get(f"/api/v1/runs/{run_id}/trajectory").json()

    requests = model.requests[before:]
    assert run["status"] == "succeeded", run
    assert run["result"] == "The name is typed and submitted. Done."
    assert run["model"] == MODEL
    assert [s["action"]["name"] for s in steps] == ["click_xy", "click_xy", "fill_xy", "finish"]

    # 1: off the screenshot → refused before acting, and the model is told in its own coordinates.
    assert "outside the screenshot" in steps[0]["error"] and f"({IMG_W}x{IMG_H})" in steps[0]["error"]
    # 2: the click was mapped back to CSS pixels and hit #go (the page's title says so at the next step).
    x, y = steps[1]["action"]["args"]["x"], steps[1]["action"]["args"]["y"]
    assert abs(x - GO[0]) <= 3 and abs(y - GO[1]) <= 3, (x, y)
    assert steps[1]["error"] is None
    assert steps[2]["observation"]["title"] == "clicked"
    # 3: typed into #name at its mapped point and pressed Enter.
    assert steps[2]["action"]["args"]["text"] == "Ada" and steps[2]["action"]["args"]["enter"] is True
    assert steps[3]["observation"]["title"] == "typed:Ada"

    # What the model was sent: Fara's system prompt with the resized size, PNG screenshots of that size,
    # the task first, later turns with the URL; the guard error reached the model; no JSON schema.
    assert len(requests) == 4
    for body in requests:
        assert body["model"] == MODEL and "response_format" not in body
        system = body["messages"][0]
        assert system["role"] == "system" and f"The screen's resolution is {IMG_W}x{IMG_H}." in system["content"]
        images = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]
                  if p["type"] == "image_url"]
        assert 1 <= len(images) <= 3
        png = base64.b64decode(images[-1]["image_url"]["url"].removeprefix("data:image/png;base64,"))
        assert Image.open(io.BytesIO(png)).size == (IMG_W, IMG_H)
    first_user = requests[0]["messages"][1]["content"]
    assert first_user[-1] == {"type": "text", "text": "Press Go, then enter the name Ada."}
    second = requests[1]["messages"]
    assert second[2] == {"role": "assistant", "content": ANSWERS[0]}
    assert "Your last action failed: The point" in second[-1]["content"][-1]["text"]
    assert second[-1]["content"][-1]["text"].startswith("Current URL: " + pages.url + "/vision.html")
    # system, the task (its screenshot dropped: only the last 3 are kept), 3 screenshot turns, 3 answers
    assert len(requests[3]["messages"]) == 1 + 4 + 3
    assert isinstance(requests[3]["messages"][1]["content"], list) and len(requests[3]["messages"][1]["content"]) == 1

    # The trajectory keeps screenshots as step references, not image bytes; the worker wrote it to the volume.
    assert "base64" not in json.dumps(records)
    refs = [p for m in records[1]["messages"] if isinstance(m["content"], list) for p in m["content"] if p["type"] == "image_url"]
    assert {r["image_url"]["url"] for r in refs} == {"step:0", "step:1"}
    assert refs[-1]["resized_to"] == [IMG_W, IMG_H]
    files = list(trajectories.glob(f"*/{run_id}.jsonl"))
    assert len(files) == 1
    lines = [json.loads(l) for l in files[0].read_text().splitlines()]
    assert [l["step"] for l in lines] == [0, 1, 2, 3] and lines[-1]["outcome"]["run_status"] == "succeeded"


def test_a_team_runs_web_steps_with_the_served_models_profile(fara_stack, pages) -> None:  # noqa: ANN001
    """A team's web step is the same agent loop as a direct run's: Fara's dialect, screenshots in, coordinates out."""
    stack, model, _ = fara_stack
    marker = "TEAM-FARA"
    model.routes[marker] = [
        json.dumps({"steps": [{"agent": "web", "instruction": "Press the Go button", "expected": "the page says clicked"}]}),
        call({"action": "left_click", "coordinate": to_image(*GO)}),
        call({"action": "terminate", "status": "success"}, thought="Go is pressed."),
        json.dumps({"done": True, "feedback": ""}),  # the validator accepts the step
        json.dumps({"answer": "Go was pressed."}),
    ]
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30) as api:
        resp = api.post("/api/v1/runs", json={"task": f"{marker}: press Go", "mode": "team", "auto_approve": True,
                                              "start_url": pages.url + "/vision.html", "max_steps": 6})
        assert resp.status_code == 201, resp.text
        run = wait_terminal(api, resp.json()["id"], timeout=120)
        steps = api.get(f"/api/v1/runs/{run['id']}/steps").json()
    assert run["status"] == "succeeded" and run["result"] == "Go was pressed.", run
    assert [s["action"]["name"] for s in steps] == ["click_xy", "finish"]
    x, y = steps[0]["action"]["args"]["x"], steps[0]["action"]["args"]["y"]
    assert abs(x - GO[0]) <= 3 and abs(y - GO[1]) <= 3 and steps[1]["observation"]["title"] == "clicked"
    # The web step's prompts were Fara's: its system prompt, a screenshot of the resized size, no JSON schema.
    ours = [b for b in model.requests if marker in json.dumps(b["messages"])]
    web = [b for b in ours if "response_format" not in b]
    assert len(web) == 2 and len(ours) == 5
    for body in web:
        assert f"The screen's resolution is {IMG_W}x{IMG_H}." in body["messages"][0]["content"]
        images = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]
                  if p["type"] == "image_url"]
        png = base64.b64decode(images[-1]["image_url"]["url"].removeprefix("data:image/png;base64,"))
        assert Image.open(io.BytesIO(png)).size == (IMG_W, IMG_H)


def test_step_budget_settings_are_read_by_the_gateway(fara_stack) -> None:  # noqa: ANN001
    stack, _model, _ = fara_stack
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30) as api:
        before = api.get("/api/v1/runs").json()["total"]
        refused = api.post("/api/v1/runs", json={"task": "t", "max_steps": 10})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "max_steps_limit"
        assert api.get("/api/v1/runs").json()["total"] == before
        run = api.post("/api/v1/runs", json={"task": "t", "policy": "replay", "actions": [{"name": "finish", "answer": "ok"}]}).json()
        assert run["max_steps"] == 6  # SPARKPILOT_DEFAULT_MAX_STEPS
        done = wait_terminal(api, run["id"], timeout=60)
        assert done["status"] == "succeeded", done["reason"]


def test_log_level_setting_reaches_the_services(fara_stack) -> None:  # noqa: ANN001
    stack, _model, _ = fara_stack
    # SPARKPILOT_LOG_LEVEL=DEBUG in this stack: both processes log at DEBUG in the shared JSON format.
    for name in ("gateway", "worker"):
        lines = (stack.logdir / f"{name}.log").read_text(errors="replace").splitlines()
        levels = {json.loads(line)["level"] for line in lines if line.startswith("{")}
        assert "DEBUG" in levels, f"{name} did not log at DEBUG"


def test_a_run_samples_at_its_own_temperature(fara_stack, pages) -> None:  # noqa: ANN001
    stack, model, _ = fara_stack
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30) as api:
        before = len(model.requests)
        for temperature in (0.7, 0.0):
            resp = api.post("/api/v1/runs", json={"task": "look", "start_url": pages.url + "/vision.html",
                                                  "max_steps": 1, "temperature": temperature})
            assert resp.status_code == 201, resp.text
            assert resp.json()["policy"].get("temperature", 0.0) == temperature
            wait_terminal(api, resp.json()["id"], timeout=60)
        assert [b["temperature"] for b in model.requests[before:]] == [0.7, 0.0]
        for bad in ({"temperature": 2.5}, {"temperature": -1}, {"policy": "replay", "temperature": 0.5,
                                                                 "actions": [{"name": "finish", "answer": ""}]},
                    {"purpose": "eval"},  # an eval run needs an env to be scored by
                    {"purpose": "eval", "temperature": 0.5, "env": {"type": "miniwob", "task": "click-test", "seed": 1}},
                    {"purpose": "training"}):
            resp = api.post("/api/v1/runs", json={"task": "t", "start_url": pages.url + "/vision.html", **bad})
            assert resp.status_code == 422, resp.text
