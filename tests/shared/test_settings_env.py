"""Environment overrides of settings that are on/off switches."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lamson.settings import DEFAULTS, SettingsError, apply_environment


@pytest.mark.parametrize(("raw", "expected"), [("0", False), ("off", False), ("1", True), ("Yes", True)])
def test_lamson_auth_results_switches_sender_authentication(raw: str, expected: bool) -> None:
    module = SimpleNamespace(**{**DEFAULTS, "receiver_config": {}, "relay_config": {}, "metrics_config": {}})
    apply_environment(module, {"LAMSON_AUTH_RESULTS": raw})
    assert module.auth_results is expected


def test_a_malformed_switch_is_a_settings_error() -> None:
    module = SimpleNamespace(**DEFAULTS)
    with pytest.raises(SettingsError, match="LAMSON_AUTH_RESULTS='maybe'"):
        apply_environment(module, {"LAMSON_AUTH_RESULTS": "maybe"})
