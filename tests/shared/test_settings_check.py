"""Settings that are checked (issue 14 item 2): typos with a "did you mean", wrong types, one line each."""

from __future__ import annotations

import copy
import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from lamson import settings_check
from lamson.settings import DEFAULTS, SettingsError, load
from lamson.settings_check import ERROR, WARNING, check


def settings(**values: object) -> SimpleNamespace:
    module = SimpleNamespace(**copy.deepcopy(DEFAULTS))
    for name, value in values.items():
        setattr(module, name, value)
    return module


def lines(findings: list[settings_check.Finding]) -> list[str]:
    return [str(f) for f in findings]


def test_defaults_are_clean() -> None:
    assert check(settings()) == []


def test_a_typo_gets_a_did_you_mean() -> None:
    found = check(settings(relay_confg={"host": "smtp.example.org", "port": 25}, max_atempts=3))
    assert lines(found) == [
        "warning: max_atempts: unknown setting, did you mean max_attempts?",
        "warning: relay_confg: unknown setting, did you mean relay_config?",
    ]


def test_what_a_guide_settings_module_holds_is_not_reported() -> None:
    import logging as logging_module
    import os as os_module
    from os.path import join

    class Table:
        pass

    found = check(settings(
        database_config={"url": "sqlite:///app/data/main.db", "metadata": object(), "log_level": logging.DEBUG},
        queue_config={"queue": "run/posts", "sleep": 10}, queue_handlers=[], router_reload=False,
        logging=logging_module, os=os_module, join=join, Table=Table, table=object(),
        _private=1, RELAY_HOST="x", relay_hostname="x",  # upper case, private: never; unrelated: no
        my_answer_text="hello", welcome_subject="Hi", spam_threshold=5,
    ))
    assert found == [], lines(found)


@pytest.mark.parametrize("name, value, level, words", [
    ("receiver_config", {"host": "127.0.0.1", "port": "8823"}, ERROR, ["receiver_config['port']", "'8823'", "str"]),
    ("relay_config", {"host": None, "port": 25}, ERROR, ["relay_config['host']", "None"]),
    ("relay_config", {"host": "h", "port": 25, "usernme": "u"}, WARNING, ["relay_config['usernme']",
                                                                          "did you mean 'username'"]),
    ("relay_config", "smtp.example.org:25", ERROR, ["relay_config", "must be a dict"]),
    ("handlers", "app.handlers.sample", ERROR, ["handlers", "must be a list"]),
    ("handlers", ["app.handlers.sample", 3], ERROR, ["handlers", "strings", "3"]),
    ("relay_retries", [5, "30s"], ERROR, ["relay_retries", "'30s'"]),
    ("route_retries", {10, 60}, WARNING, ["route_retries", "no order"]),
    ("max_attempts", "5", ERROR, ["max_attempts", "integer"]),
    ("max_attempts", True, ERROR, ["max_attempts", "integer"]),
    ("relay_timeout", None, ERROR, ["relay_timeout", "number of seconds"]),
    ("served_domains", "test.com", ERROR, ["served_domains", "must be a list"]),
    ("receiver_user", 1000, ERROR, ["receiver_user", "string or None"]),
    ("spool", "disk", ERROR, ["spool", "'maildir' or 'redis'"]),
])
def test_wrong_types_one_line_each(name: str, value: object, level: str, words: list[str]) -> None:
    found = check(settings(**{name: value}))
    assert len(found) == 1, lines(found)
    assert found[0].level == level
    for word in words:
        assert word in found[0].line, (word, found[0].line)
    assert "\n" not in found[0].line


def test_tuples_and_numbers_that_work_are_fine() -> None:
    assert check(settings(route_retries=(10, 60), relay_timeout=2.5, handlers=("a.b",),
                          served_domains=["test.com"], lock_wait=0.5)) == []


def test_load_logs_each_warning_once_and_refuses_an_error_in_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every program loads its settings through load(): warnings are logged, an error stops it (issue 19)."""
    package = tmp_path / "typoapp"
    package.mkdir()
    (package / "__init__.py").touch()
    settings_file = package / "settings.py"
    settings_file.write_text(
        "import logging\n"
        "relay_confg = {'host': 'smtp.example.org', 'port': 25}\n"
        "relay_config = {'host': '127.0.0.1', 'port': 8825, 'pasword': 'x'}\n"
        "database_config = {'url': 'sqlite://'}\n"
        "redis_url = 'redis://127.0.0.1:6379/0'\n"
    )
    for var in ("LAMSON_RELAY_PORT", "LAMSON_RELAY_HOST", "LAMSON_RECEIVER_PORT", "LAMSON_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(settings_check, "_reported", set())
    caplog.set_level(logging.WARNING, logger="lamson.settings")

    def forget() -> None:
        sys.modules.pop("typoapp.settings", None)
        sys.modules.pop("typoapp", None)

    try:
        load("typoapp.settings", tmp_path)
        load("typoapp.settings", tmp_path)  # a second load in the same process says nothing new
        forget()
        settings_file.write_text(settings_file.read_text() + "handlers = 'app.handlers.sample'\n"
                                 "max_message_size = '10MB'\n")
        with pytest.raises(SettingsError) as refused:
            load("typoapp.settings", tmp_path)
        messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "lamson.settings"]
        forget()
        loose = load("typoapp.settings", tmp_path, strict=False)  # errors are the caller's: only logged
        assert loose.max_message_size == "10MB"
    finally:
        forget()
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
    assert messages == [
        ("WARNING", "relay_confg: unknown setting, did you mean relay_config?"),
        ("WARNING", "relay_config['pasword']: unknown key, did you mean 'password'?"),
    ], messages
    line = str(refused.value)
    assert "\n" not in line
    assert str(settings_file) in line
    assert "handlers: must be a list, not 'app.handlers.sample' (a str)" in line
    assert "max_message_size: must be an integer number of bytes (e.g. 10 * 1024 * 1024), not '10MB' (a str)" in line


def test_every_default_has_a_type_and_its_default_passes() -> None:
    """A setting added to DEFAULTS without a TYPES entry would go unchecked at start."""
    assert set(settings_check.TYPES) == set(DEFAULTS)
    assert set(settings_check.RANGES) <= set(DEFAULTS)
    for name in DEFAULTS:  # and each check does reject something: None where a value is required
        if settings_check.TYPES[name] not in (settings_check.OPTIONAL_STR, settings_check.OPTIONAL_DICT,
                                              settings_check.OPTIONAL_STR_LIST):
            assert [f.level for f in check(settings(**{name: None}))] == [ERROR], name


@pytest.mark.parametrize("name, value, words", [
    ("max_message_size", "10MB", ["max_message_size", "number of bytes", "'10MB'"]),
    ("max_message_size", 0, ["max_message_size", "at least 1", "0"]),
    ("max_recipients", -1, ["max_recipients", "at least 1"]),
    ("submission_max_recipients", 2.5, ["submission_max_recipients", "integer"]),
    ("max_connections", 0, ["max_connections", "at least 1"]),
    ("max_connections_per_ip", "20", ["max_connections_per_ip", "integer"]),
    ("smtp_timeout", 0, ["smtp_timeout", "more than 0"]),
    ("smtp_session_timeout", -5, ["smtp_session_timeout", "more than 0"]),
    ("smtp_start_timeout", -1, ["smtp_start_timeout", "at least 0"]),
    ("max_received_headers", 0, ["max_received_headers", "at least 1"]),
    ("spool_reserve", -1, ["spool_reserve", "at least 0"]),
    ("worker_nice", 20, ["worker_nice", "at most 19"]),
    ("relay_retries", [5, -30], ["relay_retries", "0 seconds or more"]),
    ("auth_results", "yes", ["auth_results", "True or False"]),
    ("receiver_tls", "config/tls", ["receiver_tls", "dict or None"]),
    ("receiver_tls", {"cert": "c.pem"}, ["receiver_tls", "needs 'key'"]),
    ("submission_config", {"host": "0.0.0.0", "port": "587", "users": "u"}, ["submission_config['port']", "'587'"]),
    ("dkim_config", {"domain": "example.com", "selector": "s"}, ["dkim_config", "needs 'key_file'"]),
    ("dns_config", {"nameserver": ["127.0.0.1"]}, ["dns_config['nameserver']", "did you mean 'nameservers'"]),
    ("authserv_id", 5, ["authserv_id", "string or None"]),
    ("boot_retry", "30", ["boot_retry", "number of seconds"]),
])
def test_the_receivers_limits_and_every_other_setting_are_checked(name: str, value: object,
                                                                   words: list[str]) -> None:
    found = check(settings(**{name: value}))
    assert len(found) == 1, lines(found)
    for word in words:
        assert word in found[0].line, (word, found[0].line)


def test_zero_where_it_means_no_limit_is_fine() -> None:
    assert check(settings(reply_rate_limit=0, relay_domain_concurrency=0, spool_reserve=0, smtp_start_timeout=0,
                          max_loop_traces=0, relay_lifetime=0, lock_wait=0, auth_results=0, worker_nice=-20,
                          route_retries=[0, 1.5])) == []


def test_writable_folders(tmp_path: Path) -> None:
    from lamson.settings_check import _writable

    assert _writable(tmp_path / "run" / "spool") is None  # would be created under tmp_path
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "not a folder" in str(_writable(blocker / "spool"))
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert "cannot create" in str(_writable(locked))
