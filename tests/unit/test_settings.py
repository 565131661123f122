import pytest
from pydantic import ValidationError

from sparkpilot.settings import TEMPLATE_ADMIN_TOKEN, GatewaySettings


def test_template_admin_token_refused_outside_dev(settings_env, monkeypatch) -> None:
    monkeypatch.setenv("SPARKPILOT_ENV", "prod")
    monkeypatch.setenv("SPARKPILOT_ADMIN_TOKEN", TEMPLATE_ADMIN_TOKEN)
    with pytest.raises(ValidationError, match="template value"):
        GatewaySettings()


def test_template_admin_token_allowed_in_dev(settings_env, monkeypatch) -> None:
    monkeypatch.setenv("SPARKPILOT_ENV", "dev")
    monkeypatch.setenv("SPARKPILOT_ADMIN_TOKEN", TEMPLATE_ADMIN_TOKEN)
    assert GatewaySettings().admin_token == TEMPLATE_ADMIN_TOKEN


def test_prefix_list_from_comma_string(settings_env, monkeypatch) -> None:
    monkeypatch.setenv("SPARKPILOT_ALLOWED_URL_PREFIXES", "file:///a/, file:///b/ ,")
    assert GatewaySettings().allowed_url_prefixes == ["file:///a/", "file:///b/"]


def test_redis_keys_are_namespaced(settings_env) -> None:
    s = GatewaySettings()
    assert s.key("run", "abc", "events") == f"{settings_env['SPARKPILOT_KEY_PREFIX']}:run:abc:events"
