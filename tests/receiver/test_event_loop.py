"""Which event loop the receiver and the logging server run (lamson.receiver.run_loop)."""

from __future__ import annotations

import asyncio

import pytest

from lamson.receiver import EVENT_LOOP_ENV, loop_name, run_loop


async def running_loop() -> str:
    return loop_name(asyncio.get_running_loop())


def test_uvloop_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EVENT_LOOP_ENV, raising=False)
    assert run_loop(running_loop()) == "uvloop"


def test_the_environment_turns_uvloop_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV, "asyncio")
    assert run_loop(running_loop()) == "asyncio"


def test_an_unknown_loop_falls_back_to_asyncio_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV, "tokio")
    assert run_loop(running_loop()) == "asyncio"
    assert "tokio" in caplog.text
