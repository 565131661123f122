"""The registry's plain functions on a real database: adapter paths, promotion, the model a run uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sparkpilot import registry
from sparkpilot.db.models import Adapter, AdapterAlias, AdapterStatus
from sparkpilot.errors import Conflict, InvalidInput, NotFound

BASE = "smollm2-135m-instruct"


def _fake_adapter(path: Path, rank: int = 4) -> Path:
    """A folder that passes validation (the weights are not read here)."""
    path.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": rank, "base_model_name_or_path": f"/models/{BASE}"}
    (path / "adapter_config.json").write_text(json.dumps(config))
    (path / "adapter_model.safetensors").write_bytes(b"")
    return path


@pytest.fixture
def adapters(tmp_path: Path) -> Path:
    """An adapters folder with two good adapters, and a good one outside it."""
    root = tmp_path / "adapters"
    for name in ("one", "two", "nested/three"):
        _fake_adapter(root / name)
    _fake_adapter(tmp_path / "outside")
    return root


def _register(db, adapters: Path, name: str, path: str = "one", promote: bool = True) -> Adapter:  # noqa: ANN001
    row = registry.register(db, name, path, BASE, 8, "test", adapters, promote=promote)
    db.commit()
    return row


def test_adapter_path_accepts_relative_and_absolute_inside(adapters: Path) -> None:
    real = adapters.resolve()
    assert registry.adapter_path("one", adapters) == real / "one"
    assert registry.adapter_path("nested/three", adapters) == real / "nested" / "three"
    assert registry.adapter_path(str(adapters / "two"), adapters) == real / "two"
    assert registry.adapter_path("nested/../one", adapters) == real / "one"
    (adapters / "link").symlink_to(adapters / "two", target_is_directory=True)
    assert registry.adapter_path("link", adapters) == real / "two"


def test_adapter_path_refuses_everything_outside(adapters: Path) -> None:
    outside = adapters.parent / "outside"
    (adapters / "escape").symlink_to(outside, target_is_directory=True)
    for path in (str(outside), "../outside", str(adapters / ".." / "outside"), "one/../../outside", "escape",
                 str(adapters / "escape" / "sub"), "/", str(adapters), ".", "bad\x00name"):
        with pytest.raises(InvalidInput) as err:
            registry.adapter_path(path, adapters)
        assert err.value.code == "adapter_path", path


def test_adapters_folder_reached_through_a_symlink(tmp_path: Path, adapters: Path) -> None:
    via = tmp_path / "via"
    via.symlink_to(adapters, target_is_directory=True)
    assert registry.adapter_path(str(adapters / "one"), via) == adapters.resolve() / "one"
    assert registry.adapter_path(str(via / "two"), adapters) == adapters.resolve() / "two"


def test_register_outside_writes_nothing(db, adapters: Path) -> None:  # noqa: ANN001
    for path in (str(adapters.parent / "outside"), "../outside"):
        with pytest.raises(InvalidInput) as err:
            _register(db, adapters, "x", path)
        assert err.value.code == "adapter_path"
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Adapter)) == 0
    assert db.scalar(select(func.count()).select_from(AdapterAlias)) == 0


def test_register_stores_the_resolved_path(db, adapters: Path) -> None:  # noqa: ANN001
    (adapters / "link").symlink_to(adapters / "two", target_is_directory=True)
    row = _register(db, adapters, "x", "link")
    assert row.path == str(adapters.resolve() / "two") and row.served_name == "x@v1"


def test_promote_and_register_without_promote(db, adapters: Path) -> None:  # noqa: ANN001
    _register(db, adapters, "a")
    _register(db, adapters, "a", "two", promote=False)
    assert registry.resolve(db, "a").version == 1
    assert registry.promote(db, "a@v2").version == 2
    assert registry.resolve(db, "a").version == 2
    assert registry.rollback(db, "a").version == 1
    with pytest.raises(NotFound) as err:
        registry.promote(db, "a@v7")
    assert err.value.code == "adapter_not_found"
    v2 = registry.resolve(db, "a@v2")
    v2.status, v2.error = AdapterStatus.failed, "boom"
    with pytest.raises(Conflict) as conflict:
        registry.promote(db, "a@v2")
    assert conflict.value.code == "adapter_failed"


def test_a_name_without_alias_is_not_promoted(db, adapters: Path) -> None:  # noqa: ANN001
    _register(db, adapters, "quiet", promote=False)
    assert db.get(AdapterAlias, "quiet") is None
    with pytest.raises(NotFound) as err:
        registry.resolve(db, "quiet")
    assert err.value.code == "adapter_not_promoted" and "quiet@vN" in err.value.message
    assert registry.resolve(db, "quiet@v1").version == 1
    with pytest.raises(NotFound) as err:
        registry.resolve(db, "never")
    assert err.value.code == "adapter_not_found"


def test_resolve_model(db, adapters: Path) -> None:  # noqa: ANN001
    assert registry.resolve_model(db, None, BASE, "agent") == BASE
    assert registry.resolve_model(db, "", BASE, "agent") == BASE
    assert registry.resolve_model(db, BASE, BASE, "agent") == BASE
    for ref, code in (("nosuch", "adapter_not_found"), ("nosuch@v1", "adapter_not_found")):
        with pytest.raises(NotFound) as err:
            registry.resolve_model(db, ref, BASE, "agent")
        assert err.value.code == code
    with pytest.raises(InvalidInput) as bad:
        registry.resolve_model(db, "x@1", BASE, "agent")
    assert bad.value.code == "adapter_ref"

    _register(db, adapters, "agent", promote=False)
    assert registry.resolve_model(db, None, BASE, "agent") == BASE  # registered but never promoted
    with pytest.raises(NotFound) as err:
        registry.resolve_model(db, "agent", BASE, "agent")
    assert err.value.code == "adapter_not_promoted"
    registry.promote(db, "agent@v1")
    assert registry.resolve_model(db, None, BASE, "agent") == "agent@v1"
    _register(db, adapters, "agent", "two")
    assert registry.resolve_model(db, None, BASE, "agent") == "agent@v2"
    assert registry.resolve_model(db, "agent", BASE, "other") == "agent@v2"
    assert registry.resolve_model(db, "agent@v1", BASE, "agent") == "agent@v1"
    assert registry.resolve_model(db, None, BASE, "other") == BASE
    assert registry.resolve_model(db, None, BASE, "") == BASE
    registry.rollback(db, "agent")
    assert registry.resolve_model(db, None, BASE, "agent") == "agent@v1"
