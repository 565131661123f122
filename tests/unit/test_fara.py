"""Fara-7B's dialect without a browser: the resize, the parser on hand-written answers, the prompt's shape."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from agent.dialects import JsonDialect, Turn, dialect_for
from agent.fara import FaraDialect, parse_fara, system_prompt, trim_url
from agent.observe import Observation
from agent.parse import ParseError
from agent.prompt import PromptTooLong
from agent.vision import Screen, encode_screen, smart_resize
from sparkpilot.profiles import ModelProfile, TEXT_DEFAULT, profile_for

FARA = ModelProfile(match="*fara*", input="text+image", actions="coordinates", answer="fara",
                    max_pixels=12_845_056, max_images=3)
# The mapping Fara's own agent uses at its default 1440x900 viewport (its README log: [1074, 37] → (1083.03, 37.17)).
SCREEN_1440 = Screen("data:", 1428, 896, 1440 / 1428, 900 / 896)


def answer(arguments: dict, thought: str = "Thinking.") -> str:
    return f'{thought}\n<tool_call>\n{json.dumps({"name": "computer_use", "arguments": arguments})}\n</tool_call>'


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def obs(url: str = "http://site.test/a?q=1", size: tuple[int, int] = (1440, 900)) -> Observation:
    return Observation(url, "t", [], "", screenshot=png(*size), viewport=size)


class CountingPolicy:
    """Stands in for ModelPolicy's limits: no tokenizer (the dialect estimates)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def prompt_limit(self, space: object) -> int:
        return self.limit

    def count_tokens(self, messages: list, limit: int) -> None:
        return None


# ---------------------------------------------------------------- resize and scale


@pytest.mark.parametrize(("size", "expected"), [((1440, 900), (1428, 896)), ((1280, 800), (1288, 812)),
                                                ((1280, 720), (1288, 728)), ((1920, 1080), (1932, 1092))])
def test_smart_resize_matches_fara(size: tuple[int, int], expected: tuple[int, int]) -> None:
    h, w = smart_resize(size[1], size[0])
    assert (w, h) == expected


def test_smart_resize_caps_and_lifts_the_area() -> None:
    h, w = smart_resize(700, 1000, max_pixels=256 * 28 * 28)
    assert h * w <= 256 * 28 * 28 and h % 28 == 0 and w % 28 == 0
    h, w = smart_resize(20, 30, min_pixels=3136)
    assert h * w >= 3136
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, 500)


def test_coordinates_map_back_as_fara_does() -> None:
    x, y = SCREEN_1440.to_viewport(1074, 37)
    assert x == pytest.approx(1083.0252, abs=1e-3) and y == pytest.approx(37.1652, abs=1e-3)


def test_encode_screen_resizes_and_keeps_the_scale() -> None:
    screen = encode_screen(png(1000, 700), (1000, 700), FARA.model_copy(update={"max_pixels": 200_704}))
    image = Image.open(io.BytesIO(__import__("base64").b64decode(screen.data_url.split(",", 1)[1])))
    assert image.size == (screen.width, screen.height) == (532, 364)
    assert screen.scale_x == pytest.approx(1000 / 532) and screen.scale_y == pytest.approx(700 / 364)
    assert screen.tokens == 19 * 13


def test_a_screenshot_already_on_the_grid_is_sent_as_taken() -> None:
    from agent.vision import png_size

    raw = png(1428, 896)
    assert png_size(raw) == (1428, 896)
    screen = encode_screen(raw, (1428, 896), FARA)
    assert __import__("base64").b64decode(screen.data_url.split(",", 1)[1]) == raw  # byte for byte
    assert (screen.scale_x, screen.scale_y) == (1.0, 1.0)
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a" + bytes(30))


# ---------------------------------------------------------------- parser


def test_left_click_maps_to_click_xy_in_viewport_pixels() -> None:
    a = parse_fara(answer({"action": "left_click", "coordinate": [1074, 37]}), SCREEN_1440)
    assert a.name == "click_xy" and a.method == "fara"
    assert a.args["x"] == pytest.approx(1083.0252, abs=1e-3) and a.args["screen"] == [1074, 37]
    assert a.args["screen_size"] == [1428, 896]


@pytest.mark.parametrize(("arguments", "name", "expected"), [
    ({"action": "mouse_move", "coordinate": [714, 448]}, "hover_xy", {"x": 720.0, "y": 450.0}),
    ({"action": "type", "text": "Paris", "coordinate": [714, 448]}, "fill_xy",
     {"x": 720.0, "y": 450.0, "text": "Paris", "enter": True, "clear": False}),
    ({"action": "type", "text": "x", "coordinate": [0, 0], "press_enter": False, "delete_existing_text": True},
     "fill_xy", {"x": 0.0, "y": 0.0, "text": "x", "enter": False, "clear": True}),
    ({"action": "type", "text": "no point"}, "fill_xy", {"text": "no point", "enter": True, "clear": False}),
    ({"action": "key", "keys": ["ctrl", "a"]}, "press", {"key": "Control+a"}),
    ({"action": "key", "keys": ["Enter"]}, "press", {"key": "Enter"}),
    ({"action": "scroll", "pixels": -250}, "scroll", {"dx": 0, "dy": 400}),
    ({"action": "scroll", "pixels": 3}, "scroll", {"dx": 0, "dy": -400}),
    ({"action": "visit_url", "url": "example.com/a"}, "goto", {"url": "https://example.com/a"}),
    ({"action": "visit_url", "url": "http://127.0.0.1:8000/"}, "goto", {"url": "http://127.0.0.1:8000/"}),
    ({"action": "visit_url", "url": "cheap flights"}, "goto", {"url": "https://www.bing.com/search?q=cheap+flights&FORM=QBLH"}),
    ({"action": "web_search", "query": "a b"}, "goto", {"url": "https://www.bing.com/search?q=a+b&FORM=QBLH"}),
    ({"action": "history_back"}, "go_back", {}),
    ({"action": "wait", "time": 2}, "wait", {"seconds": 2.0}),
    ({"action": "wait", "time": 60}, "wait", {"seconds": 10.0}),
    ({"action": "pause_and_memorize_fact", "fact": "price is 12"}, "memorize", {"text": "price is 12"}),
    ({"action": "terminate", "status": "failure"}, "finish", {"answer": "Thinking.", "success": False}),
    ({"action": "click", "coordinate": [0, 0]}, "click_xy", {"x": 0.0, "y": 0.0}),  # Fara's executor aliases
])
def test_every_fara_action_maps_onto_a_registered_action(arguments: dict, name: str, expected: dict) -> None:
    a = parse_fara(answer(arguments), SCREEN_1440)
    assert a.name == name
    assert {k: v for k, v in a.args.items() if k not in ("screen", "screen_size")} == pytest.approx(expected)


def test_terminate_answers_with_the_thoughts() -> None:
    a = parse_fara(answer({"action": "terminate", "status": "success"}, thought="The price is $12."), SCREEN_1440)
    assert a.args == {"answer": "The price is $12.", "success": True}


def test_parser_tolerates_missing_close_tag_python_dicts_and_stray_text() -> None:
    text = 'ok\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "history_back"}}'
    assert parse_fara(text, SCREEN_1440).name == "go_back"
    text = "<tool_call>\n{'name': 'computer_use', 'arguments': {'action': 'left_click', 'coordinate': [1, 2]}}\n</tool_call>"
    assert parse_fara(text, SCREEN_1440).name == "click_xy"
    assert parse_fara('{"action": "history_back"}', SCREEN_1440).name == "go_back"


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("I will click the button.", "No <tool_call>"),
    (answer({"action": "left_click"}), "coordinate"),
    (answer({"action": "left_click", "coordinate": [1, "a"]}), "coordinate"),
    (answer({"action": "type"}), '"text"'),
    (answer({"action": "key", "keys": []}), '"keys"'),
    (answer({"action": "scroll", "pixels": 0}), '"pixels"'),
    (answer({"action": "visit_url"}), '"url"'),
    (answer({"action": "fly"}), "Unknown action"),
    ('<tool_call>\n{"name": "computer_use"}\n</tool_call>', 'no "action"'),
])
def test_bad_answers_are_feedback_the_model_can_read(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message) as err:
        parse_fara(text, SCREEN_1440)
    assert '<tool_call>\n{"name": "computer_use"' in str(err.value)  # every error shows the expected format


def test_click_without_a_screenshot_is_an_error() -> None:
    with pytest.raises(ParseError, match="no screenshot"):
        parse_fara(answer({"action": "left_click", "coordinate": [1, 2]}), None)


# ---------------------------------------------------------------- prompt


def test_system_prompt_states_the_resized_resolution() -> None:
    text = system_prompt(1428, 896)
    assert "The screen's resolution is 1428x896." in text
    assert text.startswith("You are a helpful assistant.\n\nYou are a web automation agent")
    assert '"name": "computer_use"' in text and "{width}" not in text


def test_trim_url_drops_the_query_and_cuts_long_urls() -> None:
    assert trim_url("http://a.test/x?secret=1") == "http://a.test/x"
    assert trim_url("http://a.test/" + "y" * 200).endswith(" ...")


def test_first_prompt_is_screenshot_then_task() -> None:
    d = FaraDialect(FARA)
    p = d.prompt(0, "Find the price.", obs(), None, [], None, CountingPolicy(20_000))
    assert [m["role"] for m in p.messages] == ["system", "user"]
    image, text = p.messages[1]["content"]
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png;base64,")
    assert text == {"type": "text", "text": "Find the price."}
    assert p.structured is False
    assert p.record[1]["content"][0] == {"type": "image_url", "image_url": {"url": "step:0"}, "resized_to": [1428, 896]}
    assert p.tokens >= 51 * 32  # the screenshot's visual tokens are counted


def test_history_keeps_the_last_three_screenshots_and_every_answer() -> None:
    d = FaraDialect(FARA)
    policy = CountingPolicy(50_000)
    turns = []
    for i in range(5):
        d.prompt(i, "Goal", obs(f"http://s.test/{i}"), None, turns, None, policy)
        turns.append(Turn(i, f"http://s.test/{i}", "", f"answer {i}", "boom" if i == 3 else None))
    p = d.prompt(5, "Goal", obs("http://s.test/5"), None, turns, None, policy)
    roles = [m["role"] for m in p.messages]
    # system, task (text only), A0, A1, A2, [img 3] A3, [img 4] A4, [img 5]
    assert roles == ["system", "user", "assistant", "assistant", "assistant", "user", "assistant", "user",
                     "assistant", "user"]
    assert p.messages[1]["content"] == [{"type": "text", "text": "Goal"}]
    assert [m["content"] for m in p.messages if m["role"] == "assistant"] == [f"answer {i}" for i in range(5)]
    texts = [m["content"][-1]["text"] for m in p.messages[5:] if m["role"] == "user"]
    assert texts[0].startswith("Current URL: http://s.test/3\nHere is the next screenshot")
    assert texts[1] == "Current URL: http://s.test/4\nYour last action failed: boom\nHere is the next screenshot. Think about what to do next."
    assert len(d.screens) == 3  # older screenshots are not kept in memory


def test_prompt_drops_old_answers_then_screenshots_to_fit() -> None:
    d = FaraDialect(FARA)
    turns = []
    for i in range(3):
        d.prompt(i, "Goal", obs(), None, turns, None, CountingPolicy(50_000))
        turns.append(Turn(i, "http://s.test/", "", "x" * 4000, None))
    one_image = 51 * 32
    tight = CountingPolicy(6093 // 4 + 2 * one_image + 600)
    p = d.prompt(3, "Goal", obs(), None, turns, None, tight)
    assert p.tokens <= tight.limit
    assert sum(1 for m in p.messages if m["role"] == "assistant") < 3
    with pytest.raises(PromptTooLong):
        d.prompt(4, "Goal", obs(), None, turns, None, CountingPolicy(one_image))


def test_vision_needs_screenshots() -> None:
    o = Observation("http://a.test/", "t", [], "", screenshot=None)
    with pytest.raises(PromptTooLong, match="SPARKPILOT_AGENT_SCREENSHOT"):
        FaraDialect(FARA).prompt(0, "g", o, None, [], None, CountingPolicy(50_000))


# ---------------------------------------------------------------- profiles


def test_profiles_pick_the_dialect_by_model_name(tmp_path) -> None:  # noqa: ANN001
    from sparkpilot.settings import ROOT

    shipped = ROOT / "config" / "models.json"
    for name in ("microsoft/Fara-7B", "fara-7b", "/data/models/Fara-7B-merged"):
        profile = profile_for(name, shipped)
        assert (profile.input, profile.actions, profile.answer) == ("text+image", "coordinates", "fara"), name
        assert isinstance(dialect_for(profile), FaraDialect)
    for name in ("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "some-unknown-model"):
        profile = profile_for(name, shipped)
        assert (profile.input, profile.answer) == ("text", "json"), name
        assert isinstance(dialect_for(profile), JsonDialect)
    assert profile_for("x", tmp_path / "missing.json") == TEXT_DEFAULT
    bad = tmp_path / "bad.json"
    bad.write_text('{"profiles": [{"match": "*", "input": "video"}]}')
    with pytest.raises(ValueError, match="not valid"):
        profile_for("x", bad)


def test_json_dialect_attaches_the_screenshot_for_a_text_plus_image_model() -> None:
    from agent.action_space import build_action_space

    o = obs(size=(640, 400))
    o.elements = [{"bid": "12", "tag": "button", "role": "", "text": "Go", "visible": True, "in_viewport": True,
                   "x": 1, "y": 1}]
    space = build_action_space(o)
    vlm = ModelProfile(input="text+image")
    p = JsonDialect(vlm).prompt(0, "Click Go", o, space, [], None, CountingPolicy(5000))
    image, text = p.messages[-1]["content"]
    assert image["type"] == "image_url" and "[12] button" in text["text"]
    assert p.record[-1]["content"][0]["image_url"]["url"] == "step:0" and p.structured
    plain = JsonDialect(TEXT_DEFAULT).prompt(0, "Click Go", o, space, [], None, CountingPolicy(5000))
    assert isinstance(plain.messages[-1]["content"], str)
