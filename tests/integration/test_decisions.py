"""How the model decides, against the real vLLM server: ids from the page only, prompts that fit."""

from __future__ import annotations

import json

import asyncio

from agent.action_space import MAX_TEXT, answer_tokens, build_action_space, target_name
from agent.observe import observe
from agent.policies import ModelPolicy
from agent.prompt import build_messages, fit_messages

MODEL = "smollm2-135m-instruct"


def _page_with(browser, html: str):
    page = browser.new_page(viewport={"width": 800, "height": 600})
    page.set_content(html)
    return page


def test_every_sampled_answer_names_an_id_on_the_page(browser, vllm) -> None:
    page = _page_with(browser, """<h1>Shop</h1><button>Buy</button><button>Cancel</button>
        <a href="#x">Help</a><input placeholder="Coupon"><select><option>S</option><option>M</option></select>
        <span style="cursor:pointer">More</span>""")
    obs = observe(page, screenshot=False, salt=7)
    space = build_action_space(obs, env_judges_end=True)
    on_page = {e["bid"] for e in obs.elements}
    messages = build_messages("Buy the item in size M.", obs, space, [], None)
    policy = ModelPolicy(vllm, MODEL, 60, 2, max_tokens=64, temperature=1.0)
    room = policy.answer_room(space)  # what decide() asks for: the longest answer the schema allows
    assert room == answer_tokens(space.schema()) > 2 + 4 * MAX_TEXT
    # temperature 1.0: the schema, not greedy luck, keeps every id valid and every answer whole
    async def sample(n: int) -> list:
        return await asyncio.gather(*(policy._client.complete(messages, max_tokens=room, temperature=1.0,
                                                              json_schema=space.schema()) for _ in range(n)))

    try:
        outs = policy._run(sample(12))
    finally:
        policy.close()
    for out in outs:
        assert out.finish_reason == "stop", out.text
        answer = json.loads(out.text)
        assert answer["action"] in space.actions, out.text
        assert answer["bid"] in on_page and space.allows(answer["action"], answer), out.text
        assert answer["target"] == target_name(obs.element(answer["bid"])), out.text  # the name is that id's
    page.close()


def test_a_500_element_page_fits_the_model_context(browser, vllm) -> None:
    buttons = "".join(f"<button>Product number {i} with a long descriptive name</button>" for i in range(500))
    page = _page_with(browser, f"<p>{'filler text ' * 400}</p>{buttons}")
    obs = observe(page, screenshot=False, salt=3)
    assert len(obs.elements) >= 500
    space = build_action_space(obs)
    policy = ModelPolicy(vllm, MODEL, 120, 2, max_tokens=64)
    limit = policy.prompt_limit(space)
    try:
        messages, counted = fit_messages(lambda e, t: build_messages("Click product 250.", obs, space, [], None, e, t),
                                         lambda m: policy.count_tokens(m, limit), limit)
        exact, max_len = policy._run(policy._client.tokenize(messages, MODEL))
        assert max_len == 2048 and exact <= limit == 2048 - answer_tokens(space.schema())
        assert "more elements cut" in messages[1]["content"]
        decision = policy.decide(messages, space)  # the server accepts it and answers in the schema
        assert decision.metrics["prompt_tokens"] == exact
        assert space.allows(json.loads(decision.text)["action"], json.loads(decision.text))
    finally:
        policy.close()
        page.close()


def test_the_served_grammar_keeps_strings_to_their_bound(vllm) -> None:
    """The premise of answer_tokens: vLLM's grammar stops a string at maxLength and a URL at its pattern."""
    from agent.action_space import URL_FIELD

    schema = {"type": "object", "properties": {"text": {"type": "string", "maxLength": 12}, "url": URL_FIELD},
              "required": ["text", "url"], "additionalProperties": False}
    messages = [{"role": "user", "content": "Write a very long story about a dragon, then a very long web address "
                                            "with many query parameters and accented letters: é, ü, 🙂."}]
    policy = ModelPolicy(vllm, MODEL, 60, 2)

    async def sample(n: int) -> list:
        return await asyncio.gather(*(policy._client.complete(messages, max_tokens=answer_tokens(schema),
                                                              temperature=1.0, json_schema=schema) for _ in range(n)))

    try:
        outs = policy._run(sample(8))
    finally:
        policy.close()
    answers = []
    for out in outs:
        assert out.finish_reason == "stop", out.text
        answers.append(json.loads(out.text))
        assert len(answers[-1]["text"]) <= 12 and len(answers[-1]["url"]) <= 128 and answers[-1]["url"].isascii(), out.text
    assert max(len(a["text"]) for a in answers) == 12  # the model ran into the bound, and the grammar held it there
