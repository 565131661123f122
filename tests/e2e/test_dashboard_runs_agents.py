"""The Runs and Agents pages in real Chromium against the real stack: the runs list (search, filters, pages past
50, auto-refresh), the new-run form with its options and the API's errors, agents (create, edit, run) and
document collections (upload, search).

Runs the list needs are scripted (`policy: replay`, one `finish` action): the pages are under test, not the model.
"""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.sync_api import expect

from tests.helpers import wait_terminal
from tests.load import wait_all_terminal

FINISH = [{"name": "finish", "answer": "ok"}]
HTTP_ERROR = r"Failed to load resource: the server responded with a status of 4(09|22)"


def _replay(api: httpx.Client, pages, task: str) -> str:  # noqa: ANN001
    resp = api.post("/api/v1/runs", json={"task": task, "start_url": pages.url + "/index.html",
                                          "policy": "replay", "actions": FINISH})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def test_runs_list_searches_filters_pages_and_refreshes_in_place(dash, api, pages) -> None:  # noqa: ANN001
    tag = f"lst{uuid.uuid4().hex[:6]}"
    bulk = [_replay(api, pages, f"bulk {tag} number {i}") for i in range(50)]
    needles = [_replay(api, pages, f"Needle {tag} number {i}") for i in range(3)]
    assert {r["status"] for r in wait_all_terminal(api, bulk + needles, timeout=240)} == {"succeeded"}
    page, rows = dash.page, dash.page.locator("#runs [data-run-id]")
    dash.open("#/runs")

    page.fill("[data-testid=runs-search]", tag)
    expect(page.locator("[data-testid=runs-range]")).to_have_text("1–50 of 53", timeout=10_000)
    expect(rows).to_have_count(50)
    # Newest first: the needles (made last) lead; each row links to its run's page.
    assert {rows.nth(i).get_attribute("data-run-id") for i in range(3)} == set(needles)
    first = rows.first
    assert first.locator("a").get_attribute("href") == f"#/runs/{first.get_attribute('data-run-id')}"
    expect(page.locator("[data-testid=runs-prev]")).to_be_disabled()
    dash.shot("runs")

    page.click("[data-testid=runs-next]")
    expect(page.locator("[data-testid=runs-range]")).to_have_text("51–53 of 53")
    expect(rows).to_have_count(3)
    assert {rows.nth(i).get_attribute("data-run-id") for i in range(3)} == set(bulk[:3])
    expect(page.locator("[data-testid=runs-next]")).to_be_disabled()

    # A new matching run appears by itself; the user stays on page 2 with the search they typed.
    late = _replay(api, pages, f"late {tag}")
    expect(page.locator("[data-testid=runs-range]")).to_have_text("51–54 of 54", timeout=15_000)
    expect(page.locator("[data-testid=runs-search]")).to_have_value(tag)
    wait_terminal(api, late)

    page.select_option("#status-filter", "failed")
    expect(page.locator("[data-testid=runs-empty]")).to_have_text("No run matches these filters.")
    page.select_option("#status-filter", "succeeded")
    expect(page.locator("[data-testid=runs-range]")).to_have_text("1–50 of 54", timeout=10_000)  # back to page 1
    expect(page.locator("[data-testid=runs-total]")).to_have_text("54 runs match")

    page.fill("[data-testid=runs-search]", f"needle {tag}")  # any case
    expect(rows).to_have_count(3, timeout=10_000)
    assert {rows.nth(i).get_attribute("data-run-id") for i in range(3)} == set(needles)
    expect(page.locator("[data-testid=runs-pager]")).to_be_hidden()

    page.select_option("#mode-filter", "team")
    expect(page.locator("[data-testid=runs-empty]")).to_be_visible()
    page.select_option("#mode-filter", "direct")
    expect(rows).to_have_count(3)
    page.fill("#created-before", "2020-01-01")
    expect(page.locator("[data-testid=runs-empty]")).to_be_visible()
    page.fill("#created-before", "")
    page.fill("#created-after", "2020-01-01")
    expect(rows).to_have_count(3)

    page.click("[data-testid=runs-clear]")
    expect(page.locator("[data-testid=runs-search]")).to_have_value("")
    expect(page.locator("#status-filter")).to_have_value("")
    everything = api.get("/api/v1/runs", params={"limit": 1}).json()["total"]
    assert everything >= 54
    expect(page.locator("[data-testid=runs-range]")).to_have_text(f"1–50 of {everything}", timeout=10_000)
    expect(page.locator("[data-testid=runs-next]")).to_be_enabled()


def test_new_run_form_submits_every_option_and_opens_the_run(dash, api, pages) -> None:  # noqa: ANN001
    tag = uuid.uuid4().hex[:6]
    base = next(m["name"] for m in api.get("/api/v1/models").json() if m["kind"] == "base")
    page = dash.page
    dash.open("#/runs")
    expect(page.locator(f"#run-model option[value='{base}']")).to_be_attached(timeout=10_000)

    page.fill("#task", f"scripted form run {tag}")
    page.fill("#start-url", pages.url + "/index.html")
    page.select_option("#run-model", base)
    page.fill("#max-steps", "3")
    page.fill("#allowed-domains", "127.0.0.1, example.test")
    page.click("text=Approval rules")
    page.select_option("[data-testid=run-approval-run_code]", "deny")
    page.select_option("[data-testid=run-approval-download]", "allow")
    page.click("text=Scripted runs and MiniWoB")
    page.select_option("#run-policy", "replay")
    page.fill("#run-actions", '[{"name": "finish", "answer": "form done"}]')
    page.click("#submit-run")

    expect(page).to_have_url(re.compile(r"#/runs/\w+$"), timeout=10_000)
    run_id = page.url.rsplit("/", 1)[1]
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["task"] == f"scripted form run {tag}" and run["start_url"] == pages.url + "/index.html"
    assert (run["model"], run["max_steps"], run["mode"]) == (base, 3, "direct")
    assert run["allowed_domains"] == ["127.0.0.1", "example.test"]
    assert run["policy"]["type"] == "replay" and run["policy"]["actions"] == [{"name": "finish", "answer": "form done"}]
    assert run["policy"]["approvals"] == {"run_code": "deny", "download": "allow"}
    assert wait_terminal(api, run_id)["result"] == "form done"

    # A team run: mode, auto-approve and temperature travel too (cancelled at once: the plan is not under test).
    dash.go("#/runs")
    expect(page.locator("#task")).to_be_visible()
    expect(page.locator("#auto-approve")).to_be_disabled()  # only for team runs
    page.fill("#task", f"team form run {tag}")
    page.fill("#max-steps", "1")
    page.select_option("#run-mode", "team")
    page.check("#auto-approve")
    page.fill("#temperature", "0.7")
    page.click("#submit-run")
    expect(page).to_have_url(re.compile(r"#/runs/\w+$"), timeout=10_000)
    team_id = page.url.rsplit("/", 1)[1]
    assert team_id != run_id
    team = api.get(f"/api/v1/runs/{team_id}").json()
    assert (team["mode"], team["auto_approve"], team["policy"]["temperature"], team["max_steps"]) == ("team", True, 0.7, 1)
    api.post(f"/api/v1/runs/{team_id}/cancel")  # 409 if it already ended: either way it is done below
    wait_terminal(api, team_id, timeout=180)


def test_new_run_form_shows_the_apis_errors(dash, api) -> None:  # noqa: ANN001
    dash.allow(HTTP_ERROR)
    page = dash.page
    dash.open("#/runs")
    before = api.get("/api/v1/runs", params={"limit": 1}).json()["total"]
    page.fill("#task", "a run that the API refuses")
    page.fill("#start-url", "ftp://example.test/")
    page.click("#submit-run")
    expect(page.locator("#error")).to_contain_text("not allowed", timeout=10_000)
    expect(page.locator("[data-testid=run-form-error]")).to_contain_text("not allowed")

    page.fill("#start-url", "")
    page.fill("#max-steps", "100000")
    page.click("#submit-run")
    expect(page.locator("[data-testid=run-form-error]")).to_contain_text("above this server's limit")
    assert re.search(r"#/runs$", page.url)  # still on the list: nothing was started
    assert api.get("/api/v1/runs", params={"limit": 1}).json()["total"] == before


def test_a_document_is_uploaded_and_found_by_search(dash, api, tmp_path) -> None:  # noqa: ANN001
    name = f"e2e docs {uuid.uuid4().hex[:6]}"
    page = dash.page
    dash.open("#/agents")
    page.fill("#collection-name", name)
    page.fill("#collection-description", "shipping notes")
    page.click("[data-testid=collection-create]")
    expect(page.locator("[data-testid=collection-msg]")).to_contain_text(f"Created {name}", timeout=10_000)
    col = page.locator("[data-testid=collection]", has_text=name)
    expect(col).to_be_visible()

    doc = tmp_path / "ferries.md"
    doc.write_text("# Shipping\n\nParcels to Norway travel by ferry from Hirtshals and take five days.\n\n"
                   "# Returns\n\nReturned parcels are refunded within fourteen days.\n")
    col.locator("[data-testid=doc-upload]").set_input_files(str(doc))
    col = page.locator("[data-testid=collection]", has_text=name)  # redrawn with the document
    expect(col.locator("[data-testid=doc-upload-msg]")).to_contain_text("ferries.md: ready", timeout=30_000)
    expect(col.locator("tr", has_text="ferries.md")).to_contain_text("ready")
    [stored] = next(c for c in api.get("/api/v1/collections").json() if c["name"] == name)["documents"]
    assert (stored["filename"], stored["status"]) == ("ferries.md", "ready") and stored["chunks"] >= 1

    # The new collection is offered to agents, and searched here.
    expect(page.locator("[data-testid=agent-documents]")).to_contain_text(name)
    page.select_option("#doc-search-collection", label=name)
    page.fill("#doc-search-q", "which ferry goes to Norway")
    page.click("[data-testid=doc-search-go]")
    hit = page.locator("[data-testid=doc-hit]").first
    expect(hit).to_contain_text("Hirtshals", timeout=10_000)
    expect(hit).to_contain_text("ferries.md")


def test_an_agent_is_created_edited_and_run_from_the_agents_page(dash, api, pages) -> None:  # noqa: ANN001
    dash.allow(HTTP_ERROR)
    name = f"e2e agent {uuid.uuid4().hex[:6]}"
    page = dash.page
    dash.open("#/agents")
    form = page.locator("[data-testid=agent-form]")

    page.fill("#agent-name", "-bad name")  # refused before any request
    page.click("[data-testid=agent-save]")
    expect(page.locator("[data-testid=agent-form-msg]")).to_contain_text("Name:")
    page.fill("#agent-name", name)
    page.fill("#agent-tools", "nosuch.tool")  # the API refuses a tool no MCP server provides
    page.click("[data-testid=agent-save]")
    expect(page.locator("[data-testid=agent-form-msg]")).to_contain_text("nosuch", timeout=10_000)
    expect(page.locator("[data-testid=agent-form-msg]")).to_have_class(re.compile("err"))

    page.fill("#agent-tools", "")
    page.fill("#agent-description", "reads titles")
    page.fill("#agent-instructions", "Read the page title first.")
    page.fill("#agent-max-steps", "4")
    form.locator("summary", has_text="Approval rules").click()
    page.select_option("#agent-approval-run_code", "deny")
    form.locator("[data-testid=agent-save]").click()
    expect(page.locator("[data-testid=agent-form-msg]")).to_contain_text(f"Created {name} (version 1)", timeout=10_000)
    row = page.locator(f"[data-testid=agents-table] tr[data-agent-name='{name}']")
    expect(row).to_contain_text("v1")
    agent = next(a for a in api.get("/api/v1/agents").json()["items"] if a["name"] == name)
    assert (agent["max_steps"], agent["instructions"], agent["approval_policy"]) == (4, "Read the page title first.",
                                                                                    {"run_code": "deny"})

    row.locator("[data-testid=agent-edit]").click()
    expect(page.locator("#agent-name")).to_have_value(name)
    expect(page.locator("#agent-max-steps")).to_have_value("4")
    page.fill("#agent-description", "reads titles, edited")
    page.click("[data-testid=agent-save]")
    expect(page.locator("[data-testid=agent-form-msg]")).to_contain_text(f"Saved {name} as version 2", timeout=10_000)
    expect(row).to_contain_text("v2")
    expect(row).to_contain_text("reads titles, edited")

    row.locator("[data-testid=agent-run]").click()
    run_form = page.locator("[data-testid=agent-run-form]")
    expect(run_form).to_be_visible()
    page.fill("#agent-run-task", "What is the title?")
    page.fill("#agent-run-url", pages.url + "/index.html")
    page.click("text=Scripted actions (replay instead of the model)")
    page.fill("#agent-run-actions", '[{"name": "finish", "answer": "agent done"}]')
    run_form.locator("[data-testid=agent-run-submit]").click()
    expect(page).to_have_url(re.compile(r"#/runs/\w+$"), timeout=10_000)
    run = wait_terminal(api, page.url.rsplit("/", 1)[1])
    assert (run["agent_id"], run["agent_version"], run["max_steps"], run["status"], run["result"]) == \
        (agent["id"], 2, 4, "succeeded", "agent done")

    dash.go("#/agents")  # the stats count the run
    row.locator("[data-testid=agent-runs]").click()
    expect(page.locator("[data-testid=agent-stats]")).to_contain_text("1 of 1 finished (100%)", timeout=10_000)
    expect(page.locator(f"[data-testid=agent-stats] a[href='#/runs/{run['id']}']")).to_be_visible()
    expect(row).to_contain_text("100% of 1")
    dash.shot("agents")

    row.locator("[data-testid=agent-delete]").click()
    row.locator("[data-testid=agent-delete-confirm]").click()
    expect(row).to_have_count(0, timeout=10_000)
    assert api.get(f"/api/v1/agents/{agent['id']}").status_code == 404


def test_runs_page_reads_at_a_phones_width(narrow_dash, api, pages) -> None:  # noqa: ANN001
    tag = f"nrw{uuid.uuid4().hex[:6]}"
    ids = [_replay(api, pages, f"narrow {tag} task with a fairly long description number {i}") for i in range(3)]
    wait_all_terminal(api, ids, timeout=120)
    page = narrow_dash.page
    narrow_dash.open("#/runs")
    page.fill("[data-testid=runs-search]", tag)
    expect(page.locator("#runs [data-run-id]")).to_have_count(3, timeout=10_000)
    # Nothing is wider than the phone: no sideways scrolling of the page.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for sel in ("#task", "#submit-run", "[data-testid=runs-search]", "#status-filter"):
        box = page.locator(sel).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, sel
    narrow_dash.shot("runs-narrow")
