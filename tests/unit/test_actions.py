"""The action registry, the parser's table and the model's JSON schema describe the same actions."""

from services.worker.agent.actions import REGISTRY, action_schema
from services.worker.agent.parse import ACTION_PARAMS, parse_action


def test_parser_table_matches_registry() -> None:
    assert set(ACTION_PARAMS) == set(REGISTRY)
    for name, (required, optional) in ACTION_PARAMS.items():
        fields = set(REGISTRY[name].params.model_fields)
        assert set(required) | set(optional) == fields, name


def test_schema_offers_every_action_and_its_output_parses() -> None:
    schema = action_schema()
    variants = schema["properties"]["action"]["anyOf"]
    assert {v["properties"]["name"]["enum"][0] for v in variants} == set(REGISTRY)
    click = next(v for v in variants if v["properties"]["name"]["enum"] == ["click"])
    assert click["required"] == ["name", "bid"] and click["additionalProperties"] is False
    parsed = parse_action('{"thought": "go", "action": {"name": "fill", "bid": "4", "text": "hi"}}')
    assert (parsed.name, parsed.args, parsed.method) == ("fill", {"bid": "4", "text": "hi"}, "json")
