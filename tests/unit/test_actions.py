"""The action registry, the parser's table and the per-step action space describe the same actions."""

import json

from agent.action_space import MAX_URL, answer_tokens, build_action_space
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


def _longest(schema: dict) -> object:
    """The longest value the grammar lets the model write for `schema` (4-byte characters in free text)."""
    if "enum" in schema:
        return max(schema["enum"], key=lambda v: len(json.dumps(v, ensure_ascii=False).encode()))
    if schema.get("type") == "object":
        return {k: _longest(v) for k, v in schema["properties"].items()}
    if "pattern" in schema:  # URL_FIELD: ASCII
        return "u" * MAX_URL
    return "\U0001f642" * schema["maxLength"]


def test_the_answer_bound_covers_the_longest_answer_of_every_action() -> None:
    elements = [_el("a1", "input", type="text", text="Ünïcödé field name " * 3),
                _el("b2", "select", options=["small", "a much longer option"]), _el("c3", "button", text='say "hi"')]
    obs = Observation("http://x", "t", elements, "", scrollable=True, history_length=2)
    for thought in ("none", "after"):
        space = build_action_space(obs, thought=thought)
        variants = [v for name in space.actions for v in space.variants(name)]
        for v in variants:
            raw, escaped = (len(json.dumps(_longest(v), ensure_ascii=a, separators=(", ", ": ")).encode())
                            for a in (False, True))  # an enum's literal may be written either way
            assert raw <= answer_tokens(v) <= max(raw, escaped) + 4, v  # tokens ≤ bytes: never cut
        assert answer_tokens(space.schema()) == max(answer_tokens(v) for v in variants)
    # A schema with no bound (an MCP tool's free-form arguments) has none: the configured max_tokens applies.
    assert answer_tokens({"type": "object", "properties": {"q": {"type": "string"}}}) is None


def test_a_resumed_replay_plays_on_after_the_actions_already_recorded() -> None:
    from agent.policies import ReplayPolicy

    policy = ReplayPolicy([{"name": "wait", "seconds": 1}, {"name": "finish", "answer": "ok"}], start=1)
    assert json.loads(policy.decide([], None).text)["action"] == {"name": "finish", "answer": "ok"}
    assert policy.decide([], None).text == "(replay script exhausted)"
