import pytest
from pydantic import ValidationError

from sparkpilot.settings import TEMPLATE_ADMIN_TOKEN, GatewaySettings


def test_template_admin_token_refused_outside_dev(settings_override, monkeypatch) -> None:
    monkeypatch.setenv("SPARKPILOT_DEPLOYMENT", "prod")
    monkeypatch.setenv("SPARKPILOT_ADMIN_TOKEN", TEMPLATE_ADMIN_TOKEN)
    with pytest.raises(ValidationError, match="template value"):
        GatewaySettings()


def test_template_admin_token_allowed_in_dev(settings_override, monkeypatch) -> None:
    monkeypatch.setenv("SPARKPILOT_DEPLOYMENT", "dev")
    monkeypatch.setenv("SPARKPILOT_ADMIN_TOKEN", TEMPLATE_ADMIN_TOKEN)
    assert GatewaySettings().admin_token == TEMPLATE_ADMIN_TOKEN


def test_allow_list_from_comma_string(settings_override, monkeypatch) -> None:
    from sparkpilot.settings import EgressSettings

    monkeypatch.setenv("SPARKPILOT_BROWSER_ALLOW_PRIVATE", "staging.test, 10.0.0.0/8 ,")
    assert EgressSettings().browser_allow_private == ["staging.test", "10.0.0.0/8"]
    monkeypatch.setenv("SPARKPILOT_BROWSER_ALLOW_PRIVATE", "10.0.0.0/33")
    with pytest.raises(ValidationError, match="CIDR"):
        EgressSettings()


def test_redis_keys_are_namespaced(settings_override) -> None:
    s = GatewaySettings()
    assert s.key("run", "abc", "events") == f"{settings_override['SPARKPILOT_KEY_PREFIX']}:run:abc:events"


def test_the_old_name_of_the_deployment_setting_is_refused_not_ignored(settings_override, monkeypatch) -> None:  # noqa: ANN001
    from sparkpilot.settings import CommonSettings

    monkeypatch.setenv("SPARKPILOT_ENV", "prod")  # an .env from before the rename: "prod" must not become "dev"
    with pytest.raises(ValueError, match="SPARKPILOT_ENV is now SPARKPILOT_DEPLOYMENT"):
        CommonSettings()
    monkeypatch.delenv("SPARKPILOT_ENV")
    monkeypatch.setenv("SPARKPILOT_DEPLOYMENT", "prod")
    assert CommonSettings().deployment == "prod"


def test_the_template_database_password_is_refused_outside_dev(settings_override, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SPARKPILOT_DEPLOYMENT", "prod")
    monkeypatch.setenv("SPARKPILOT_ADMIN_TOKEN", "x" * 32)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://sparkpilot:sparkpilot@postgres:5432/sparkpilot")
    with pytest.raises(ValidationError, match="database password is still the template"):
        GatewaySettings()
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://sparkpilot:0a1b2c3d4e5f@postgres:5432/sparkpilot")
    assert GatewaySettings().deployment == "prod"


def test_the_metrics_token_is_long_and_its_own_secret_outside_dev(settings_override, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SPARKPILOT_DEPLOYMENT", "prod")
    monkeypatch.setenv("SPARKPILOT_ADMIN_TOKEN", "x" * 32)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://sparkpilot:0a1b2c3d4e5f@postgres:5432/sparkpilot")
    monkeypatch.delenv("SPARKPILOT_METRICS_TOKEN")
    # unset: no metrics token at all (not reading the checkout's .env, where `make up` writes one)
    assert GatewaySettings(_env_file=None).metrics_token == ""
    monkeypatch.setenv("SPARKPILOT_METRICS_TOKEN", "short-metrics")
    with pytest.raises(ValidationError, match="SPARKPILOT_METRICS_TOKEN has 13 characters"):
        GatewaySettings()
    monkeypatch.setenv("SPARKPILOT_METRICS_TOKEN", "x" * 32)
    with pytest.raises(ValidationError, match="equals SPARKPILOT_ADMIN_TOKEN"):
        GatewaySettings()
    monkeypatch.setenv("SPARKPILOT_METRICS_TOKEN", "m" * 24)
    assert GatewaySettings().metrics_token == "m" * 24
    monkeypatch.setenv("SPARKPILOT_DEPLOYMENT", "dev")
    monkeypatch.setenv("SPARKPILOT_METRICS_TOKEN", "short-metrics")
    assert GatewaySettings().metrics_token == "short-metrics"


def test_trusted_hosts_always_hold_loopback_compose_and_this_machine(settings_override, monkeypatch) -> None:  # noqa: ANN001
    import socket

    local = list(dict.fromkeys(["localhost", "127.0.0.1", "[::1]", "gateway", socket.gethostname().lower()]))
    assert GatewaySettings().trusted_hosts == local
    monkeypatch.setenv("SPARKPILOT_TRUSTED_HOSTS", "Spark.Example.com, *.lan ,fe80::1,localhost")
    assert GatewaySettings().trusted_hosts == [*local, "spark.example.com", "*.lan", "[fe80::1]"]
    for bad, message in (("spark.example.com:8000", "names a port"), ("a*.lan", "wildcard")):
        monkeypatch.setenv("SPARKPILOT_TRUSTED_HOSTS", bad)
        with pytest.raises(ValidationError, match=message):
            GatewaySettings()
