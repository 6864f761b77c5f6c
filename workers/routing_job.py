"""The routing job, as its five steps: claim → order → admit → deliver → commit.

A routing wake-up names spool keys of one group (none: a drain of the
oldest waiting ones). The job, run with the worker's runtime:

1. **claims** them (a rename in the spool: of several workers or hosts,
   exactly one gets each);
2. takes them **in order** (lamson.order.Order): a message whose sender has
   an older message waiting is handled after it, in this job; one whose
   older message is in another worker's hands goes back to wait, and that
   worker takes it next; after each message, the sender's next one follows;
3. **admits** each (lamson.workers.admission): attempts, size, recipient,
   quarantine, loops, DMARC, and the application's own checks; the first
   reason parks it;
4. **delivers** it once per envelope recipient: the Router runs the state
   functions and says what came of it (lamson.router.disposition); this job
   alone acts on that (parks, retries, waits); replies the handlers send go
   to the outbox, not yet fsynced;
5. **commits** the batch: one group commit of the outbox, then the handled
   messages leave the spool, then one wake-up for the relay, with the
   counts (:class:`Outcome`) for the metrics.

So a reply is durable before its message leaves the spool (a crash in
between handles the message again: at-least-once), and what goes wrong with
one message stays with it: a busy conversation or Redis trouble puts it back
to wait without costing an attempt; an error outside the handlers costs one
attempt and a backoff; at ``max_attempts`` it is parked with the reason
(docs/design.md, "The routing job").
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

import redis

from lamson import context, logs, loops, metrics, queues
from lamson.connection import unavailable
from lamson.envelope import Envelope
from lamson.groups import Group
from lamson.order import Go, Older, Order, Wait
from lamson.router.disposition import Disposition, NoRoute, Routed
from lamson.router.locks import ConversationBusy
from lamson.router.routing import RouterClass
from lamson.runtime import Runtime
from lamson.spool import Spooled, UnreadableRecord, key_time
from lamson.workers import admission

log = logging.getLogger("lamson.workers")

#: The most messages one job handles by following senders' lines beyond the keys it was given.
MAX_CHAIN = 200


class Outcome(enum.StrEnum):
    """What became of a message in a routing job: the job's summary line and the router's counters."""

    ROUTED = "routed"
    PARKED = "parked"
    RETRY = "retry"
    BUSY = "busy"
    BACK_REDIS = "back (Redis)"
    WAITING = "waiting behind an older message"
    HANDED_BACK = "handed back"

    @property
    def counter(self) -> str | None:
        """The lamson.metrics counter it adds to (``lamson_routed_total``, ``lamson_parked_total`` or
        ``lamson_deferred_total``, labelled by group), if any."""
        return _COUNTERS.get(self)


_COUNTERS = {Outcome.ROUTED: "routed", Outcome.PARKED: "parked", Outcome.RETRY: "deferred",
             Outcome.BUSY: "deferred", Outcome.BACK_REDIS: "deferred"}


class RoutingJob:
    """One job's work: the messages it claimed, in order, and their commit."""

    def __init__(self, runtime: Runtime, group: Group) -> None:
        self.rt = runtime
        self.group = group
        self.router: RouterClass = runtime.routes()
        self.config = runtime.config
        self.spool = runtime.spool(group.name)
        self.worker = runtime.worker_id
        self.order = Order(runtime.lines(group.name), self.spool, self.worker, claim=self._claim,
                           wake=self._wake)
        self.checks = admission.checks(self.config)
        self.retries = [float(r) for r in self.config.route_retries] or [10.0]
        self.trace = loops.trace_name(self.config, runtime.names)
        self.done: list[Spooled] = []
        self.outcomes: dict[Outcome, int] = {}
        self.counted: dict[Outcome, int] = {}  # the outcomes already written to the metrics counters
        self.chained = 0  # messages taken by following senders' lines
        self.summary = ""  # what run() returned
        self.ran = 0  # state functions run (what Router.deliver returns; in-process tests read it)

    def run(self, keys: list[str], senders: list[str] | None = None) -> str:
        """The five steps over the keys of a wake-up; returns the job's summary ("3 routed, 1 parked")."""
        todo = self.claim(keys, senders)
        try:
            with self._keeping_locks():
                while todo:
                    if self.rt.stopping:  # the rest goes back to wait, woken for other workers
                        self._hand_back(todo)
                        break
                    spooled = self.in_order(todo)
                    if spooled is None:
                        continue
                    with logs.about(spooled.envelope.id):  # what its handlers log names it too
                        done = self.handle(spooled)
                    if done:
                        self.follow(spooled, todo)
        except redis.RedisError as exc:
            if not unavailable(exc):
                raise
            log.warning("Redis unavailable (%s): %d claimed message(s) go back to wait", exc, len(todo))
            self._count(Outcome.BACK_REDIS, len(todo))
            for spooled in todo:
                self.spool.release(spooled, self.worker, delay=self.retries[0])
        finally:
            self.commit()
        self.summary = ", ".join(f"{n} {what}" for what, n in self.outcomes.items()) or "nothing waiting"
        return self.summary

    # -- 1. claim --------------------------------------------------------------------------------

    def claim(self, keys: list[str], senders: list[str] | None) -> deque[Spooled]:
        """The messages this job takes, oldest first: the keys given (none: the oldest due ones).

        ``senders``, when the wake-up carries them, are only a hint (which lines
        to look at before claiming anything): a wrong one costs a detour, never
        a message.
        """
        if not keys:
            keys = self.spool.waiting(due=True)[:queues.MAX_BATCH]
        elif senders is not None and self.group.ordered:
            try:
                keys, behind = self.order.not_behind(keys, senders)
                if behind:
                    self._count(Outcome.WAITING, behind)
            except redis.RedisError as exc:  # the usual way then: claim each and look at its line
                log.debug("lines not looked at before claiming: %s", exc)
        claimed = [got for key in dict.fromkeys(keys) if (got := self._claim(key)) is not None]
        return deque(sorted(claimed, key=lambda s: (key_time(s.key), s.key)))

    def _claim(self, key: str) -> Spooled | None:
        try:
            return self.spool.claim(key, self.worker)
        except UnreadableRecord as exc:
            parked = self.spool.park_unreadable(key, self.worker, str(exc))
            self._count(Outcome.PARKED)
            log.error("%s; parked as %s in %s", exc, parked, self.spool.parked)
            return None
        except ValueError as exc:  # not a spool key: a forged or corrupt wake-up
            log.error("routing wake-up names %r: %s", key, exc)
            return None

    # -- 2. order --------------------------------------------------------------------------------

    def in_order(self, todo: deque[Spooled]) -> Spooled | None:
        """The next message whose turn it is, taken off ``todo`` (None: the one looked at waits)."""
        spooled = todo.popleft()
        if not self.group.ordered:
            return spooled
        turn = self.order.turn(spooled)
        if isinstance(turn, Wait):
            self._count(Outcome.WAITING)
            return None
        if isinstance(turn, Older):  # an older message of the same sender was waiting: it goes first
            todo.appendleft(spooled)
            return turn.spooled
        assert isinstance(turn, Go)
        return turn.spooled  # itself (re-claimed, if it had stepped back for a moment)

    def follow(self, spooled: Spooled, todo: deque[Spooled]) -> None:
        """``spooled`` is done: its sender's next waiting message, if any, is handled next."""
        if not self.group.ordered:
            return
        nxt = self.order.next(spooled, take=self.chained < MAX_CHAIN and not self.rt.stopping)
        if nxt is not None:
            self.chained += 1
            todo.appendleft(nxt)

    def _hand_back(self, todo: deque[Spooled]) -> None:
        """Put claimed messages back to wait (no attempt charged) and wake another worker for them."""
        self._leave_lines()  # the workers woken must find them at the head of their lines
        keys = [s.key for s in todo if self.spool.release(s, self.worker)]
        todo.clear()
        self._count(Outcome.HANDED_BACK, len(keys))
        for batch in queues.chunks(keys):
            self._wake(batch)

    def handle(self, spooled: Spooled) -> bool:
        """Admit, then deliver, one message whose turn it is; True when it is done (routed or parked)."""
        try:
            admitted = self.admit(spooled)
        except Exception as exc:  # an application's check that raised: an error outside the handlers
            return self._failed(spooled, exc, spooled.envelope.rcpt_tos)
        return self._park(spooled, admitted.refused) if admitted.refused else self.deliver(admitted)

    # -- 3. admit --------------------------------------------------------------------------------

    def admit(self, spooled: Spooled) -> admission.Admitting:
        """The message through the admission checks (lamson.workers.admission); ``refused``: why it is parked."""
        admitted = admission.Admitting(
            spooled, self.group, self.config, self.trace, traces=loops.count_traces(spooled.data, self.trace),
            authenticate=lambda: self._authenticate(spooled))
        admitted.refused = admission.first_reason(admitted, self.checks)
        return admitted

    def _authenticate(self, spooled: Spooled) -> Any:
        """SPF/DKIM/DMARC of a message (lamson.authres); None for a group that does not authenticate."""
        if not (self.group.authenticated and self.config.auth_results):
            return None
        from lamson import authres

        env = spooled.envelope
        result = authres.check(spooled.data, peer=env.peer, mail_from=env.mail_from, helo=env.helo,
                               settings=self.config)
        # No DNS at all (a laptop, a sandbox): the same temperror for every message, not news.
        log.log(logging.DEBUG if result.no_dns else logging.INFO, "%s: spf=%s dkim=%s dmarc=%s%s", env.id,
                result.spf, result.dkim, result.dmarc, f" ({result.reason})" if result.reason else "")
        return result

    # -- 4. deliver ------------------------------------------------------------------------------

    def deliver(self, admitted: admission.Admitting) -> bool:
        """Route an admitted message to each recipient; True when it is done and its line can move on."""
        spooled = admitted.spooled
        env = spooled.envelope
        auth = admitted.auth
        data = auth.stamp(spooled.data) if auth is not None else spooled.data
        rcpts = list(env.rcpt_tos)
        queued_from = len(self.rt.pending_outbox)
        parked: list[str] = []  # why, for each recipient it was parked for
        for index, rcpt in enumerate(rcpts):
            message = self._request(env, rcpt, data, auth)
            handling = context.Handling(traces=admitted.traces, accepted_at=env.received_at, id=env.id)
            try:
                with context.handling(handling):
                    disposition = self.router.dispose(message)
            except ConversationBusy as exc:
                log.info("%s: conversation busy (%s); waits and tries again", env.id, exc)
                self._back(spooled, replace(env, rcpt_tos=tuple(rcpts[index:])), delay=1.0, what=Outcome.BUSY)
                return False
            except Exception as exc:
                return self._failed(spooled, exc, tuple(rcpts[index:]))
            self.ran += disposition.ran if not isinstance(disposition, NoRoute) else 0
            reason = self._act(message, disposition)
            if reason:
                parked.append(f"<{rcpt}>: {reason[:200]}")  # the whole reason is in the parked file
        self.done.append(spooled)
        self._report(env, len(rcpts), parked, self.rt.pending_outbox[queued_from:])
        return True

    @staticmethod
    def _request(env: Envelope, rcpt: str, data: bytes, auth: Any) -> Any:
        from lamson.mail import MailRequest

        message = MailRequest(env.peer, env.mail_from, rcpt, data)
        message.envelope = env
        message.auth = auth
        return message

    def _act(self, message: Any, disposition: Disposition) -> str | None:
        """The one place a disposition is acted on: park what was not routed; the reason, if parked.

        Without an ``UNDELIVERABLE_QUEUE`` (an application's boot set it to None, as
        1.x's forwarding boots do) nothing is parked: the Router only logs it.
        """
        if isinstance(disposition, Routed):
            return None
        if isinstance(disposition, NoRoute):
            self.router.undeliverable(message, disposition.reason)
        else:  # Crashed, Refused
            self.router.park(message, disposition.reason)
        return disposition.reason if self.router.UNDELIVERABLE_QUEUE is not None else None

    def _failed(self, spooled: Spooled, exc: Exception, left: tuple[str, ...]) -> bool:
        """An error outside the handlers (the Router's services, not a state function): retry or park."""
        env = spooled.envelope
        if self.rt.propagate_errors:  # an in-process test: the error is the test's to see (1.x's LOG_EXCEPTIONS),
            self.done.append(spooled)  # and the message is gone, as in 1.x (kept, it would block its sender's line)
            if self.group.ordered:
                self.order.next(spooled, take=False)
            raise exc
        if unavailable(exc):  # Redis down or refusing writes: no attempt charged
            self._back(spooled, replace(env, rcpt_tos=left), delay=self.retries[0], what=Outcome.BACK_REDIS)
            raise exc
        attempts = env.attempts + 1
        limit = self.config.max_attempts
        if attempts >= limit:
            return self._park(spooled, f"{type(exc).__name__} outside the handlers: {exc} "
                                       f"(attempt {attempts} of {limit})", log_error=True)
        delay = self.retries[min(attempts - 1, len(self.retries) - 1)]
        log.error("%s: error outside the handlers (attempt %d of %d); again in %ss", env.id, attempts, limit,
                  delay, exc_info=exc)
        self._back(spooled, replace(env, rcpt_tos=left, attempts=attempts), delay=delay, what=Outcome.RETRY)
        return False

    def _report(self, env: Envelope, rcpts: int, parked: list[str], replies: list[str]) -> None:
        said = _replies(replies)
        if len(parked) == rcpts:  # a handler raised (its traceback is just above) or refused it, or no route
            self._count(Outcome.PARKED)
            log.warning("%s: not routed: parked in undeliverable_dir (%s)%s", env.id, "; ".join(parked), said)
        elif parked:
            self._count(Outcome.ROUTED)
            log.warning("%s: routed to %d of %d recipient(s), parked for the others (%s)%s", env.id,
                        rcpts - len(parked), rcpts, "; ".join(parked), said)
        else:
            self._count(Outcome.ROUTED)
            log.info("%s: routed to %d recipient(s)%s", env.id, rcpts, said)

    def _back(self, spooled: Spooled, envelope: Envelope, *, delay: float, what: Outcome) -> None:
        """Put a message back to wait (its replies so far made durable first); wake a worker when due."""
        self._commit_outbox()
        if self.spool.release(spooled, self.worker, delay=delay, envelope=envelope):
            self._count(what)
            self._wake([spooled.key], delay=delay)

    def _park(self, spooled: Spooled, reason: str, *, log_error: bool = False) -> bool:
        """Set a message aside for good (lamson.parked), with the reason; it is done (True)."""
        self._commit_outbox()
        key = self.spool.park(spooled, self.worker, reason)
        self._count(Outcome.PARKED)
        (log.error if log_error else log.warning)("%s: parked as %s in %s: %s", spooled.envelope.id, key,
                                                  self.spool.parked, reason)
        return True

    # -- 5. commit -------------------------------------------------------------------------------

    def commit(self) -> None:
        """Replies durable (one group commit), then the routed messages leave the spool, then the relay wakes."""
        self._leave_lines()
        pending = self._commit_outbox()
        for spooled in self.done:
            if not self.spool.finish(spooled.key, self.worker):
                log.warning("%s: was taken back from this worker while it ran (thought dead?); it may be "
                            "handled twice", spooled.key)
        self.done.clear()
        self.rt.pending_outbox.clear()
        # routed / parked / deferred counters (lamson.metrics) ride with the first relay wake-up
        counts = self._new_counts()
        for batch in queues.chunks(pending, queues.MAX_RELAY_BATCH):
            try:
                self.rt.wake_relay(batch, counts)
                counts = {}
            except Exception as exc:  # the replies are in the outbox: the relay's sweeper finds them
                log.warning("could not wake the relay for %d repl(ies): %s", len(batch), exc)
        if counts:
            self.rt.count(counts)

    def _commit_outbox(self) -> list[str]:
        pending = list(self.rt.pending_outbox)
        if pending:
            self.rt.outbox.commit(pending)
        return pending

    def _new_counts(self) -> dict[str, int]:
        """The counter increments not yet recorded (a second commit of the same batch counts only what is new)."""
        counts: dict[str, int] = {}
        for outcome, n in self.outcomes.items():
            new = n - self.counted.get(outcome, 0)
            if outcome.counter is not None and new:
                name = metrics.field(outcome.counter, self.group.name)
                counts[name] = counts.get(name, 0) + new
        self.counted = dict(self.outcomes)
        return counts

    # -- plumbing --------------------------------------------------------------------------------

    def _keeping_locks(self) -> AbstractContextManager[None]:
        """Conversation locks kept from one message to the next that needs the same ones (one sender's burst)."""
        keeping = getattr(self.router.LOCKS, "keeping", None)
        return keeping() if keeping is not None else nullcontext()

    def _leave_lines(self) -> None:
        try:
            self.order.flush()
        except Exception as exc:  # stale entries: whoever looks next finds them gone and passes them
            log.warning("could not take the handled messages out of their senders' lines: %s", exc)

    def _wake(self, keys: list[str], *, delay: float = 0.0) -> None:
        """A routing wake-up for ``keys`` of this group; Redis trouble is left to the sweeper."""
        try:
            self.rt.wake_router(self.group.name, keys, delay=delay)
        except Exception as exc:  # the sweeper wakes them instead
            log.debug("no wake-up for %d message(s): %s", len(keys), exc)

    def _count(self, what: Outcome, n: int = 1) -> None:
        self.outcomes[what] = self.outcomes.get(what, 0) + n


def _replies(keys: list[str]) -> str:
    """What the routed line says of the replies its handlers queued: their outbox keys (the first few).

    The relay names those keys, and the incoming message's id, in its own lines.
    """
    if not keys:
        return ""
    shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
    return f"; {len(keys)} {'reply' if len(keys) == 1 else 'replies'} queued ({shown})"
