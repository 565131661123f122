"""The action registry, the parser's table and the per-step action space describe the same actions."""

from agent.action_space import build_action_space
from agent.actions import REGISTRY
from agent.observe import Observation
from agent.parse import ACTION_PARAMS, parse_action
from agent.tools import TOOL_ACTIONS


def _el(bid: str, tag: str, **kw) -> dict:
    return {"bid": bid, "tag": tag, "role": "", "text": kw.pop("text", ""), "visible": kw.pop("visible", True),
            "in_viewport": True, **kw}


PAGE = Observation(url="http://x.test/", title="t", text="", elements=[
    _el("417", "button", text="Submit"),
    _el("23", "input", type="text"),
    _el("88", "input", type="checkbox", checked=False),
    _el("301", "select", options=["a", "b"]),
    _el("302", "option", text="a"),
    _el("9", "button", text="Gone", visible=False),
    _el("64", "button", text="Off", disabled=True),
])


def test_parser_table_matches_registry() -> None:
    # The browser actions are registered here; the tool actions are the host's (agent/tools.py).
    assert set(ACTION_PARAMS) == set(REGISTRY) | set(TOOL_ACTIONS)
    for name, (required, optional) in ACTION_PARAMS.items():
        if name in TOOL_ACTIONS:
            continue
        fields = set(REGISTRY[name].params.model_fields)
        assert set(required) | set(optional) == fields, name


def test_space_offers_per_action_ids_of_usable_elements_only() -> None:
    space = build_action_space(PAGE, env_judges_end=True)
    assert space.actions == ["click", "fill", "select_option", "press"]
    assert space.bids["click"] == ["417", "23", "88", "301"]  # not hidden, disabled or <option>
    assert space.bids["fill"] == space.bids["press"] == ["23"]
    assert space.bids["select_option"] == ["301"]
    variants = space.schema()["anyOf"]
    clicks = {v["properties"]["target"]["enum"][0]: v["properties"]["bid"]["enum"] for v in variants
              if v["properties"]["action"]["enum"] == ["click"]}
    assert clicks == {"Submit": ["417"], "textbox": ["23"], "checkbox": ["88"], "list": ["301"]}
    fill = next(v for v in variants if v["properties"]["action"]["enum"] == ["fill"])
    assert fill["required"] == ["action", "target", "bid", "text"] and fill["additionalProperties"] is False
    select = next(v for v in variants if v["properties"]["action"]["enum"] == ["select_option"])
    assert select["properties"]["value"]["enum"] == ["a", "b"]  # the select's own options
    assert all("thought" not in v["properties"] for v in variants)
    assert space.allows("click", {"bid": "417"}) and not space.allows("click", {"bid": "9"})
    assert not space.allows("fill", {"bid": "417"}) and not space.allows("finish", {"answer": ""})


def test_free_runs_may_finish_and_navigate_environment_runs_may_not() -> None:
    free = build_action_space(PAGE)
    assert {"goto", "send_msg_to_user", "finish"} <= set(free.actions) and "go_back" not in free.actions
    assert "click_xy" not in free.actions and "scroll" not in free.actions
    scrolled = Observation(url="u", title="t", text="", elements=[], scrollable=True, history_length=3)
    assert build_action_space(scrolled, env_judges_end=True).actions == ["scroll"]
    assert "go_back" in build_action_space(scrolled).actions
    assert "click_xy" in build_action_space(PAGE, coordinates=True).actions


def test_elements_with_the_same_name_share_one_target() -> None:
    page = Observation(url="u", title="t", text="", elements=[_el("5", "button", text="okay"),
                                                               _el("71", "button", text="okay")])
    variants = build_action_space(page, env_judges_end=True).variants("click")
    assert len(variants) == 1 and variants[0]["properties"]["bid"]["enum"] == ["5", "71"]


def test_thought_comes_after_the_action_and_the_output_parses() -> None:
    space = build_action_space(PAGE, env_judges_end=True, thought="after")
    click = space.schema()["anyOf"][0]
    assert list(click["properties"]) == ["action", "target", "bid", "thought"]
    parsed = parse_action('{"action": "fill", "bid": "23", "text": "hi", "thought": "type it"}')
    assert (parsed.name, parsed.args, parsed.method) == ("fill", {"bid": "23", "text": "hi"}, "json")
