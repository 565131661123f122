"""A MiniWoB++ episode as a run through the stack: the task's reward decides the outcome."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import sync_playwright

from agent.miniwob import MiniwobEpisode, MiniwobServer
from agent.observe import observe
from agent.chromium import CHROMIUM_ARGS
from tests.helpers import wait_terminal

SEED = 3


@pytest.fixture(scope="module")
def miniwob():
    with MiniwobServer() as server:
        yield server


def _goal_and_elements(server: MiniwobServer, task: str) -> tuple[str, list[dict]]:
    """The same episode opened here: its instruction and its elements (their ids differ per run)."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(server.task_url(task))
        goal = MiniwobEpisode(page).start(task, SEED, server.url)
        elements = observe(page, screenshot=False, root=MiniwobEpisode.ROOT).elements
        browser.close()
    return goal, elements


def _run(api, server, task: str, actions: list[dict]) -> dict:
    body = {"task": f"miniwob {task}", "start_url": server.task_url(task), "max_steps": 5, "policy": "replay",
            "actions": actions, "env": {"type": "miniwob", "task": task, "seed": SEED}}
    resp = api.post("/api/v1/runs", json=body)
    assert resp.status_code == 201, resp.text
    return wait_terminal(api, resp.json()["id"])


def test_solved_episode_succeeds_with_reward_1(api, miniwob) -> None:
    goal, elements = _goal_and_elements(miniwob, "click-button")
    wanted = goal.split('"')[1] if '"' in goal else goal.split()[-1].rstrip(".")
    assert any(e["tag"] == "button" and e["text"] == wanted for e in elements)
    run = _run(api, miniwob, "click-button", [{"name": "click", "target": wanted}])
    assert (run["status"], run["result"], run["reward"]) == ("succeeded", "1", 1.0), run
    assert run["reason"].startswith("miniwob reward 1")
    events = api.get(f"/api/v1/runs/{run['id']}/events").text
    assert json.dumps(goal)[1:-1] in events  # the instruction became the goal and was announced
    traj = api.get(f"/api/v1/runs/{run['id']}/trajectory").json()
    assert f"GOAL: {goal}" in traj[0]["messages"][1]["content"]
    assert traj[0]["reward"] == 1.0 and traj[0]["outcome"]["reward"] == 1.0 and traj[0]["env"]["task"] == "click-button"


def test_wrong_click_fails_with_negative_reward(api, miniwob) -> None:
    goal, elements = _goal_and_elements(miniwob, "click-button")
    wanted = goal.split('"')[1] if '"' in goal else goal.split()[-1].rstrip(".")
    wrong = next(e for e in elements if e["tag"] == "button" and e["text"] != wanted)
    run = _run(api, miniwob, "click-button", [{"name": "click", "target": wrong["text"]}])
    assert (run["status"], run["result"], run["reward"]) == ("failed", "-1", -1.0), run
    steps = api.get(f"/api/v1/runs/{run['id']}/steps").json()
    assert len(steps) == 1 and steps[0]["action"]["name"] == "click"


def test_finish_without_reward_fails(api, miniwob) -> None:
    run = _run(api, miniwob, "click-button", [{"name": "finish", "answer": "I clicked it"}])
    assert (run["status"], run["reason"], run["reward"]) == ("failed", "finished without reward", 0.0), run
    assert run["result"] == "I clicked it"
    traj = api.get(f"/api/v1/runs/{run['id']}/trajectory").json()
    assert [r["reward"] for r in traj] == [0.0] and traj[0]["outcome"]["run_status"] == "failed"


def test_miniwob_env_needs_a_start_url_and_a_valid_task(api) -> None:
    bad = [{"task": "t", "env": {"type": "miniwob", "task": "click-button", "seed": 1}},
           {"task": "t", "start_url": "http://127.0.0.1/", "env": {"type": "miniwob", "task": "Bad Task!", "seed": 1}},
           {"task": "t", "start_url": "http://127.0.0.1/", "env": {"type": "miniwob", "task": "x", "seed": -1}}]
    for body in bad:
        assert api.post("/api/v1/runs", json=body).status_code == 422
