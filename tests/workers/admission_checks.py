"""Admission checks of an application (the admission_checks setting), for tests/workers/test_lifecycle.py."""

from lamson.workers.admission import Admitting


def no_urgent(m: Admitting) -> str | None:
    return "urgent mail is not for robots" if b"Subject: URGENT" in m.spooled.data else None


def broken(m: Admitting) -> str | None:
    raise ValueError("a bug in the check")
