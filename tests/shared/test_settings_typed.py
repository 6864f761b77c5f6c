"""The typed, frozen view of the settings (lamson.typed_settings, issue 20)."""

from __future__ import annotations

import copy
import dataclasses
import sys
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import lamson.settings as lsettings
from lamson import settings_check
from lamson.settings import DEFAULTS, load_typed
from lamson.typed_settings import Settings

#: The field type each kind of lamson.settings_check.TYPES stands for.
KINDS: dict[str, Any] = {
    settings_check.INT: int,
    settings_check.NUMBER: float,
    settings_check.BOOL: bool,
    settings_check.STR: str,
    settings_check.OPTIONAL_STR: str | None,
    settings_check.STR_LIST: Sequence[str],
    settings_check.NUMBER_LIST: Sequence[float],
    settings_check.DICT: Mapping[str, Any],
    settings_check.OPTIONAL_DICT: Mapping[str, Any] | None,
    settings_check.OPTIONAL_STR_LIST: Sequence[str] | None,
}


def test_every_default_is_a_field_and_every_field_a_default() -> None:
    """A setting added to DEFAULTS without a field (or a field without a default) fails here."""
    fields = [f.name for f in dataclasses.fields(Settings)]
    assert fields[0] == "module"
    assert set(fields[1:]) == set(DEFAULTS)
    assert Settings.NAMES == tuple(fields[1:])


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_each_field_has_the_type_the_checks_accept(name: str) -> None:
    hints = typing.get_type_hints(Settings)
    assert hints[name] == KINDS[settings_check.TYPES[name]], name


def test_of_fills_missing_names_with_private_copies_of_the_defaults() -> None:
    source = SimpleNamespace(max_attempts=9, spool="redis")
    typed = Settings.of(source)
    assert typed.max_attempts == 9 and typed.spool == "redis"
    assert typed.receiver_config == DEFAULTS["receiver_config"]
    assert typed.receiver_config is not DEFAULTS["receiver_config"]  # a copy: DEFAULTS cannot be changed through it
    assert typed.route_retries == DEFAULTS["route_retries"] and typed.route_retries is not DEFAULTS["route_retries"]
    assert typed.dkim_config is None


def test_values_the_module_has_are_its_own_objects() -> None:
    relay = {"host": "smtp.example.org", "port": 25}
    typed = Settings.of(SimpleNamespace(relay_config=relay))
    assert typed.relay_config is relay


def test_none_is_every_default() -> None:
    typed = Settings.of(None)
    for name, value in DEFAULTS.items():
        assert getattr(typed, name) == value, name


def test_a_settings_is_returned_as_is() -> None:
    typed = Settings.of(SimpleNamespace())
    assert Settings.of(typed) is typed


def test_frozen() -> None:
    typed = Settings.of(SimpleNamespace())
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.max_attempts = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.module = SimpleNamespace()  # type: ignore[misc]


def test_extras_are_read_from_the_module_when_asked() -> None:
    source = SimpleNamespace(database_config={"url": "sqlite://"})
    typed = Settings.of(source)
    assert typed.extra("database_config") == {"url": "sqlite://"}
    assert typed.extra("nothing_here") is None
    assert typed.extra("nothing_here", 7) == 7
    source.relay = "assigned by config/boot.py after the view was built"
    assert typed.extra("relay") == source.relay
    assert typed.module.relay == source.relay


def test_a_lamson_setting_has_one_answer_through_extra() -> None:
    source = SimpleNamespace(max_attempts=3)
    typed = Settings.of(source)
    source.max_attempts = 4  # the view keeps what it was built with
    assert typed.extra("max_attempts") == typed.max_attempts == 3


def test_reexported_from_lamson_settings() -> None:
    assert lsettings.Settings is Settings
    with pytest.raises(AttributeError):
        lsettings.no_such_name  # noqa: B018


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A settings module on disk, as an application has (forgotten again afterwards)."""
    package = tmp_path / "typedapp"
    package.mkdir()
    (package / "__init__.py").touch()
    (package / "settings.py").write_text(
        "max_attempts = 7\n"
        "relay_config = {'host': 'smtp.example.org', 'port': 2525}\n"
        "database_config = {'url': 'sqlite://'}\n"
        "redis_url = 'redis://:secret@127.0.0.1:6379/0'\n"
    )
    for var in [v for v in lsettings.ENV_OVERRIDES if v != "LAMSON_AUTH_RESULTS"]:
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
    sys.modules.pop("typedapp.settings", None)
    sys.modules.pop("typedapp", None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_load_typed_views_the_loaded_module_itself(app: Path) -> None:
    typed = load_typed("typedapp.settings", app)
    module = sys.modules["typedapp.settings"]
    assert typed.module is module  # the 1.x view: what handlers import and config/boot.py assigns onto
    assert typed.max_attempts == 7
    assert typed.relay_config is module.relay_config
    assert typed.spool_dir == DEFAULTS["spool_dir"] == module.spool_dir
    assert typed.extra("database_config") == {"url": "sqlite://"}


def test_building_the_view_does_not_change_the_module(app: Path) -> None:
    module = lsettings.load("typedapp.settings", app)
    before = copy.deepcopy({k: v for k, v in vars(module).items() if not k.startswith("__")})
    Settings.of(module)
    assert {k: v for k, v in vars(module).items() if not k.startswith("__")} == before
