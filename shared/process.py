"""Is a process alive? One answer for the CLI's pid files, the spool's tmp/ cleanup and the tests."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True if a process with this pid exists; a zombie (exited, not yet reaped) counts as gone.

    A pid we may not signal (another user's) exists. Without /proc (macOS)
    ``kill(pid, 0)`` is all we know.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (FileNotFoundError, IndexError):
        return True
    except ProcessLookupError:
        return False
