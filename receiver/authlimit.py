"""How fast anyone may guess submission passwords: failed AUTH counted per account and per client.

Without a limit the only bound on guessing is the CPU the scrypt checks take
(30 guesses a second from one address, about 108,000 an hour against one
account: issue 21, finding 9). The per-session limit (three failures, then
421) only makes the guesser reconnect. So failures are counted across sessions,
per account and per client address (an IPv4 address or an IPv6 /64, as
``max_connections_per_ip`` counts), in Redis, so that every receiver process
and host shares the counts (docs/security.md, "Submission and AUTH").

The policy, for each of the two (account, client):

* the first ``auth_free_failures`` attempts within ``auth_failure_window``
  seconds go through at once: a user who mistypes once or twice notices nothing;
* each attempt beyond them is admitted only through a *gate*: it closes the
  gate for 1 s, the next one for 2 s, then 4, 8... up to ``auth_max_delay``;
  an attempt while a gate is closed is answered ``454 4.7.0`` at once, and its
  password is not checked (so a guess made then tells nothing);
* an attempt is counted *when it is admitted*, before its password is checked,
  in one Lua script with the gate test: many sessions started at the same
  moment get no more through than one session would; a success takes the
  account's count back to zero and gives the client its attempt back.

Counts are forgotten ``auth_failure_window`` seconds after the last failure
(at least twice ``auth_max_delay``, so that waiting out the longest gate does
not also wipe the count). A locked account is locked for its real user too
(454: a client tries again later); that is the price of bounding guesses
against one account from many addresses, and why the gates are short at first.

Redis unreachable: the limiter does not fail open. The same policy runs in the
process (:class:`LocalLimiter`), so the limit is per receiver process until
Redis answers again (a WARNING says so, once per outage).

Account names are kept only as a hash (``account_tag``): a failed AUTH's login
may be a password typed in the user name field, so it is never written to Redis
or to the log as it is.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from lamson.names import Names

log = logging.getLogger("lamson.receiver")

#: The first gate (seconds); each further failure doubles it, up to the policy's ``max_delay``.
FIRST_DELAY = 1.0

#: The reply to an attempt refused by a closed gate (RFC 4954 6: temporary authentication failure).
THROTTLED = "454 4.7.0 Temporary authentication failure, try again later"


@dataclass(frozen=True)
class Policy:
    """``auth_free_failures``, ``auth_failure_window`` and ``auth_max_delay`` (lamson.settings)."""

    free: int = 5
    window: float = 900.0
    max_delay: float = 600.0

    def delay(self, count: int) -> float:
        """The gate an admitted attempt closes behind it, ``count`` being its number in the window."""
        beyond = count - self.free
        if beyond <= 0:
            return 0.0
        return min(FIRST_DELAY * 2.0 ** min(beyond - 1, 62), self.max_delay)

    @property
    def memory(self) -> float:
        """How long a count lives after its last attempt (seconds)."""
        return max(self.window, 2 * self.max_delay)


def account_tag(login: str) -> str:
    """A stable, short hash of a login: the Redis key part and what logs may show of an unknown one."""
    return hashlib.sha256(b"lamson-auth\0" + login.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Limiter(Protocol):
    def admit(self, account: str, client: str) -> float:
        """0 when this attempt may be checked (and counts), else the seconds until a gate opens."""

    def succeeded(self, account: str, client: str) -> None:
        """The admitted attempt was right: the account starts over, the client gets its attempt back."""


#: KEYS: (count, gate) per subject. ARGV: free, memory (ms), first gate (ms), max gate (ms).
#: Returns 0 (admitted and counted) or the ms until the latest closed gate opens.
_ADMIT = """
local wait = 0
for i = 2, #KEYS, 2 do
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl > wait then wait = ttl end
end
if wait > 0 then return wait end
local free = tonumber(ARGV[1])
for i = 1, #KEYS, 2 do
  local n = redis.call('INCR', KEYS[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
  if n > free then
    local ms = math.min(tonumber(ARGV[3]) * 2 ^ math.min(n - free - 1, 62), tonumber(ARGV[4]))
    redis.call('SET', KEYS[i + 1], '1', 'PX', math.max(1, math.floor(ms)))
  end
end
return 0
"""

#: KEYS: account count, account gate, client count.
_SUCCEEDED = """
redis.call('DEL', KEYS[1], KEYS[2])
local n = tonumber(redis.call('GET', KEYS[3]) or '0')
if n > 0 then redis.call('DECR', KEYS[3]) end
return 0
"""


class LocalLimiter:
    """The policy in this process only: the fallback while Redis does not answer (and for tests)."""

    def __init__(self, policy: Policy, clock: Any = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # subject -> (count, forgotten at)
        self._gates: dict[str, float] = {}  # subject -> opens at

    def _prune(self, now: float) -> None:
        if len(self._counts) > 10_000:  # many names or addresses: drop what has expired
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            self._gates = {k: v for k, v in self._gates.items() if v > now}

    def admit(self, account: str, client: str) -> float:
        subjects = ("account:" + account_tag(account), "client:" + client)
        with self._lock:
            now = self.clock()
            self._prune(now)
            wait = max((self._gates.get(s, 0.0) - now for s in subjects), default=0.0)
            if wait > 0:
                return wait
            for subject in subjects:
                count, until = self._counts.get(subject, (0, 0.0))
                count = (count if until > now else 0) + 1
                self._counts[subject] = (count, now + self.policy.memory)
                delay = self.policy.delay(count)
                if delay:
                    self._gates[subject] = now + delay
            return 0.0

    def succeeded(self, account: str, client: str) -> None:
        with self._lock:
            subject = "account:" + account_tag(account)
            self._counts.pop(subject, None)
            self._gates.pop(subject, None)
            count, until = self._counts.get("client:" + client, (0, 0.0))
            if count > 0:
                self._counts["client:" + client] = (count - 1, until)


class RedisLimiter:
    """The policy in Redis, shared by every receiver; :class:`LocalLimiter` while Redis fails."""

    def __init__(self, conn: Any, names: Names, policy: Policy) -> None:
        self.conn = conn
        self.names = names
        self.policy = policy
        self.local = LocalLimiter(policy)
        self._admit = conn.register_script(_ADMIT)
        self._succeeded = conn.register_script(_SUCCEEDED)
        self._down = False

    def keys(self, account: str, client: str) -> list[str]:
        """count, gate of the account; count, gate of the client."""
        acct, cli = account_tag(account), client
        return [self.names.key("auth", "failures", "account", acct), self.names.key("auth", "gate", "account", acct),
                self.names.key("auth", "failures", "client", cli), self.names.key("auth", "gate", "client", cli)]

    def _redis_failed(self, exc: Exception) -> None:
        if not self._down:
            log.warning("WARNING: AUTH failures cannot be counted in Redis (%s): counted in this process "
                        "until it answers", exc)
        self._down = True

    def admit(self, account: str, client: str) -> float:
        try:
            ms = self._admit(keys=self.keys(account, client),
                             args=[self.policy.free, math.ceil(self.policy.memory * 1000),
                                   math.ceil(FIRST_DELAY * 1000), math.ceil(self.policy.max_delay * 1000)])
        except Exception as exc:
            self._redis_failed(exc)
            return self.local.admit(account, client)
        if self._down:
            log.info("AUTH failures counted in Redis again")
            self._down = False
        return max(0.0, int(ms) / 1000.0)

    def succeeded(self, account: str, client: str) -> None:
        try:
            self._succeeded(keys=self.keys(account, client)[:3])
        except Exception as exc:
            self._redis_failed(exc)
        self.local.succeeded(account, client)
