"""The routing job: a wake-up carrying spool keys; claim, route in order, commit, finish.

For each message it claims (the keys given, or the oldest waiting ones for a
drain) a router worker:

1. waits its turn in the sender's line (:mod:`lamson.order`): a message whose
   sender has an older message waiting is handled after it, in this job; one
   whose older message is in another worker's hands goes back to wait, and
   that worker takes it next;
2. parks it when it has used up its attempts or fails ``screen()``;
3. routes it once per envelope recipient (``Router.deliver``); replies the
   handlers send go to the outbox, not yet fsynced;
4. then, for the whole batch: one group commit of the outbox, the incoming
   messages removed from the spool, one wake-up for the relay.

So a reply is durable before its message leaves the spool (a crash in
between handles the message again: at-least-once), and what goes wrong with
one message stays with it: a busy conversation or Redis trouble puts it
back to wait without costing an attempt; an error outside the handlers costs
one attempt and a backoff; at ``max_attempts`` it is parked with the reason.
"""

from __future__ import annotations

import logging
from collections import deque
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

import redis

from lamson import context, logs, loops, metrics, queues
from lamson.connection import unavailable
from lamson.order import Following, sender_of
from lamson.settings import DEFAULTS
from lamson.spool import Spooled, UnreadableRecord, key_time

log = logging.getLogger("lamson.workers")

#: The most messages one job handles by following senders' lines beyond the keys it was given.
MAX_CHAIN = 200


def route(keys: list[str], group: str = "incoming", senders: list[str] | None = None) -> str:
    """Route the spooled messages ``keys`` of ``group`` (none: the oldest waiting ones).

    ``senders``, when the wake-up carries them, are only a hint (which lines to look at before
    claiming anything): a wrong one costs a detour, never a message.
    """
    ctx = context.current()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or not isinstance(group, str):
        log.error("malformed routing wake-up dropped: keys=%r group=%r", keys, group)
        return "malformed"
    if not (isinstance(senders, list) and len(senders) == len(keys) and all(isinstance(s, str) for s in senders)):
        senders = None
    return RoutingBatch(ctx, group).run(keys, senders)


def _replies(keys: list[str]) -> str:
    """What the routed line says of the replies its handlers queued: their outbox keys (the first few).

    The relay names those keys, and the incoming message's id, in its own lines.
    """
    if not keys:
        return ""
    shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
    return f"; {len(keys)} {'reply' if len(keys) == 1 else 'replies'} queued ({shown})"


class RoutingBatch:
    """One job's work: the messages it claimed, in order, and their commit."""

    def __init__(self, ctx: context.Context, group: str) -> None:
        self.ctx = ctx
        self.group = group
        self.spool = ctx.spool(group)
        self.lines = ctx.lines(group)
        self.following = Following(self.lines)
        self.worker = ctx.worker_id
        self.settings = ctx.settings
        self.max_attempts = int(getattr(self.settings, "max_attempts", DEFAULTS["max_attempts"]))
        self.retries = list(getattr(self.settings, "route_retries", DEFAULTS["route_retries"])) or [10]
        #: Maildir queues (QueueReceiver) keep no per-sender order; the spool and deferred groups do.
        self.ordered = not group.startswith("q-")
        self.size_limit = int(getattr(ctx, "queue_size_limit", 0) or 0) if not self.ordered else 0
        self.trace = loops.trace_name(self.settings, ctx.names)
        self.max_traces = int(getattr(self.settings, "max_loop_traces", DEFAULTS["max_loop_traces"]))
        self.done: list[Spooled] = []
        self.heads: set[str] = set()  # keys this job found at the head of their line as it followed it
        self.outcomes: dict[str, int] = {}
        self.counted: dict[str, int] = {}  # the outcomes already written to the metrics counters
        # Sender authentication (lamson.authres): once per message, shared by its recipients.
        self.auth_on = self.ordered and bool(getattr(self.settings, "auth_results", DEFAULTS["auth_results"]))
        self.dmarc_park = bool(getattr(self.settings, "dmarc_reject_park", DEFAULTS["dmarc_reject_park"]))
        self.auth: dict[str, tuple[Any, bytes]] = {}  # spool key -> (AuthResults, the bytes handlers see)

    def run(self, keys: list[str], senders: list[str] | None = None) -> str:
        if not keys:  # a drain: the oldest waiting ones
            keys = self.spool.waiting(due=True)[:queues.MAX_BATCH]
        elif senders is not None and self.ordered:
            try:
                keys = self._not_behind(keys, senders)
            except redis.RedisError as exc:  # the usual way then: claim each and look at its line
                log.debug("lines not looked at before claiming: %s", exc)
        claimed = [got for key in dict.fromkeys(keys) if (got := self._claim(key)) is not None]
        todo = deque(sorted(claimed, key=lambda s: (key_time(s.key), s.key)))
        try:
            with self._keeping_locks():
                self._route_all(todo)
        except redis.RedisError as exc:
            if not unavailable(exc):
                raise
            log.warning("Redis unavailable (%s): %d claimed message(s) go back to wait", exc, len(todo))
            self._count("back (Redis)", len(todo))
            for spooled in todo:
                self.spool.release(spooled, self.worker, delay=self.retries[0])
        finally:
            self.commit()
        return ", ".join(f"{n} {what}" for what, n in self.outcomes.items()) or "nothing waiting"

    @staticmethod
    def _keeping_locks() -> AbstractContextManager[None]:
        """Conversation locks kept from one message to the next that needs the same ones (one sender's burst)."""
        from lamson.router import Router

        keeping = getattr(Router.LOCKS, "keeping", None)
        return keeping() if keeping is not None else nullcontext()

    def _route_all(self, todo: deque[Spooled]) -> None:
        """Handle the claimed messages in order, following each sender's line (``todo`` shrinks as it goes)."""
        chained = 0
        while todo:
            if self.ctx.stopping:  # the process is stopping: the rest goes back to wait, woken for others
                self._hand_back(list(todo))
                todo.clear()
                break
            spooled = todo.popleft()
            turn = self._turn(spooled)
            if turn is None:
                continue
            if turn.key != spooled.key:  # an older message of the same sender was waiting: it goes first
                todo.appendleft(spooled)
                todo.appendleft(turn)
                continue
            spooled = turn  # itself (re-claimed, if it had stepped back for a moment)
            with logs.about(spooled.envelope.id):  # what its handlers log names it too
                handled = self._handle(spooled)
            if handled:
                following = self._follow(spooled, take=chained < MAX_CHAIN and not self.ctx.stopping)
                if following is not None:
                    chained += 1
                    self.heads.add(following.key)  # just read as its line's head: no need to look again
                    todo.appendleft(following)

    def _not_behind(self, keys: list[str], senders: list[str]) -> list[str]:
        """The keys to claim: not those whose sender's line another worker is following.

        Such a worker takes them next as it follows the line. Left alone, they are
        not claimed and released again, and that worker never finds one of them
        held for a moment (which would end its run of the line).
        """
        mine: dict[str, list[str]] = {}
        for key, sender in zip(keys, senders, strict=True):
            if sender_of(sender):
                mine.setdefault(sender_of(sender), []).append(key)
        if not mine:
            return keys
        heads = self.lines.heads(list(mine))
        skip: set[str] = set()
        for waiting, head in zip(mine.values(), heads, strict=True):
            if head is not None and head not in waiting and self.spool.where(head) == "claimed":
                skip.update(waiting)
        if skip:
            self._count("waiting behind an older message", len(skip))
        return [key for key in keys if key not in skip]

    def _hand_back(self, spooled: list[Spooled]) -> None:
        """Put claimed messages back to wait (no attempt charged) and wake another worker for them."""
        self._leave_lines()  # the workers woken must find them at the head of their lines
        keys = [s.key for s in spooled if self.spool.release(s, self.worker)]
        self._count("handed back", len(keys))
        for batch in queues.chunks(keys):
            try:
                queues.wake_router(self.ctx.conn, self.ctx.names, self.group, batch,
                                   timeout=queues.route_timeout(self.settings, len(batch)))
            except Exception as exc:  # the sweeper wakes them
                log.debug("no wake-up for %d handed-back message(s): %s", len(batch), exc)

    def _claim(self, key: str) -> Spooled | None:
        try:
            return self.spool.claim(key, self.worker)
        except UnreadableRecord as exc:
            parked = self.spool.park_unreadable(key, self.worker, str(exc))
            self._count("parked")
            log.error("%s; parked as %s in %s", exc, parked, self.spool.parked)
            return None
        except ValueError as exc:  # not a spool key: a forged or corrupt wake-up
            log.error("routing wake-up names %r: %s", key, exc)
            return None

    def _count(self, what: str, n: int = 1) -> None:
        self.outcomes[what] = self.outcomes.get(what, 0) + n

    # -- order ---------------------------------------------------------------

    def _turn(self, spooled: Spooled) -> Spooled | None:
        """The message to handle now for this one's sender: itself, an older waiting one, or None (wait)."""
        sender = spooled.envelope.mail_from
        if not self.ordered or not sender_of(sender):
            return spooled
        if spooled.key in self.heads:
            self.heads.discard(spooled.key)
            return spooled
        for _ in range(10):
            head = self.following.head(sender)
            if head is None or head == spooled.key:
                return spooled
            if key_time(head) > key_time(spooled.key) or (key_time(head) == key_time(spooled.key)
                                                          and head > spooled.key):
                return spooled  # we are older than the head: joined the line late (swept back), go now
            where = self.spool.where(head)
            if where == "waiting" and not self.spool.is_due(head):
                # The older one waits for a retry: so does this one. When the older one is
                # handled (its delayed wake-up), its worker takes this one next.
                self.spool.release(spooled, self.worker)
                self._count("waiting behind an older message")
                return None
            if where == "waiting":
                older = self._claim(head)
                if older is not None:
                    return older
                continue  # someone took it just now: look again
            if where == "claimed":
                # In another worker's hands: wait behind it. That worker takes us next;
                # if it finished while we looked, the head is us now and we go on.
                self.spool.release(spooled, self.worker)
                if self.following.head(sender) == spooled.key:
                    again = self._claim(spooled.key)
                    if again is not None:
                        return again
                self._count("waiting behind an older message")
                return None
            self.lines.done(sender, head)  # a stale entry: that message is done
        return spooled

    def _follow(self, spooled: Spooled, *, take: bool = True) -> Spooled | None:
        """Leave the sender's line; claim the next message of that sender if it is waiting.

        Messages that stepped back behind this one have no wake-up left: this
        worker takes the next one (``take``), or, when this job has followed
        its lines long enough, wakes another worker for it.
        """
        if not self.ordered:
            return None
        sender = spooled.envelope.mail_from
        nxt = self.following.done(sender, spooled.key)
        if nxt is None or nxt == spooled.key:
            return None
        if take:
            got = self._claim(nxt)
            if got is not None:
                return got
            # Someone holds it for a moment (a worker looking for its turn): make the line move on
            # for everyone, so whichever of us looks last takes it.
            nxt = self.following.read(sender)
            return self._claim(nxt) if nxt is not None and nxt != spooled.key else None
        nxt = self.following.read(sender)  # the worker woken must find it at the head
        if nxt is None or nxt == spooled.key:
            return None
        try:
            queues.wake_router(self.ctx.conn, self.ctx.names, self.group, [nxt],
                               timeout=queues.route_timeout(self.settings, 1))
        except Exception as exc:  # the sweeper wakes it instead
            log.debug("no wake-up for %s: %s", nxt, exc)
        return None

    # -- one message ---------------------------------------------------------

    def _handle(self, spooled: Spooled) -> bool:
        """Route one message; True when it is done (routed or parked) and its line can move on."""
        from lamson.mail import screen
        from lamson.router import ConversationBusy

        env = spooled.envelope
        if env.attempts >= self.max_attempts:
            self._park(spooled, f"{env.attempts} attempts failed (workers died or errors outside the handlers); "
                                f"parked after max_attempts={self.max_attempts}")
            return True
        if self.size_limit and len(spooled.data) > self.size_limit:
            self._park(spooled, f"{len(spooled.data)} bytes, over the queue's size_limit of {self.size_limit}")
            return True
        if not env.rcpt_tos:
            self._park(spooled, "no recipient: a queued message needs a To header")
            return True
        reason = screen(spooled.data)
        if reason:
            self._park(spooled, f"quarantined: {reason}")
            return True
        traces = loops.count_traces(spooled.data, self.trace)
        if traces > self.max_traces:
            self._park(spooled, f"mail loop: it carries {loops.TRACE_HEADER}: {self.trace} {traces} times "
                                f"(max_loop_traces={self.max_traces})")
            return True
        auth = self._authenticate(spooled)
        if self.dmarc_park and auth is not None and auth.dmarc == "fail" and auth.dmarc_policy == "reject":
            self._park(spooled, f"DMARC fail for {auth.from_domain}, whose policy is p=reject "
                                f"(spf={auth.spf}, dkim={auth.dkim}; dmarc_reject_park is on)")
            return True
        rcpts = list(env.rcpt_tos)
        queued_from = len(self.ctx.pending_outbox)
        parked: list[str] = []  # why the Router parked it, for each recipient it did
        for index, rcpt in enumerate(rcpts):
            handling = context.Handling(traces=traces, accepted_at=env.received_at, id=env.id)
            try:
                with context.handling(handling):
                    self._deliver(spooled, rcpt)
            except ConversationBusy as exc:
                log.info("%s: conversation busy (%s); waits and tries again", env.id, exc)
                self._back(spooled, replace(env, rcpt_tos=tuple(rcpts[index:])), delay=1.0, what="busy")
                return False
            except Exception as exc:
                if unavailable(exc):  # Redis down or refusing writes: no attempt charged
                    self._back(spooled, replace(env, rcpt_tos=tuple(rcpts[index:])), delay=self.retries[0],
                               what="back (Redis)")
                    raise
                attempts = env.attempts + 1
                if attempts >= self.max_attempts:
                    self._park(spooled, f"{type(exc).__name__} outside the handlers: {exc} "
                                        f"(attempt {attempts} of {self.max_attempts})", log_error=True)
                    return True
                delay = self.retries[min(attempts - 1, len(self.retries) - 1)]
                log.exception("%s: error outside the handlers (attempt %d of %d); again in %ss",
                              env.id, attempts, self.max_attempts, delay)
                self._back(spooled, replace(env, rcpt_tos=tuple(rcpts[index:]), attempts=attempts),
                           delay=delay, what="retry")
                return False
            if handling.parked:
                parked.append(f"<{rcpt}>: {handling.parked[-1][:200]}")  # the whole reason is in the file
        self.done.append(spooled)
        replies = _replies(self.ctx.pending_outbox[queued_from:])
        if len(parked) == len(rcpts):  # a handler raised (its traceback is just above) or refused it, or no route
            self._count("parked")
            log.warning("%s: not routed: parked in undeliverable_dir (%s)%s", env.id, "; ".join(parked), replies)
        elif parked:
            self._count("routed")
            log.warning("%s: routed to %d of %d recipient(s), parked for the others (%s)%s", env.id,
                        len(rcpts) - len(parked), len(rcpts), "; ".join(parked), replies)
        else:
            self._count("routed")
            log.info("%s: routed to %d recipient(s)%s", env.id, len(rcpts), replies)
        return True

    def _deliver(self, spooled: Spooled, rcpt: str) -> None:
        from lamson.mail import MailRequest
        from lamson.router import Router

        env = spooled.envelope
        auth, data = self.auth.get(spooled.key, (None, spooled.data))
        message = MailRequest(env.peer, env.mail_from, rcpt, data)
        message.envelope = env
        message.auth = auth
        Router.deliver(message)

    def _authenticate(self, spooled: Spooled) -> Any:
        """SPF/DKIM/DMARC of a message (lamson.authres), once per batch; None when ``auth_results`` is off."""
        if not self.auth_on:
            return None
        if spooled.key not in self.auth:
            from lamson import authres

            env = spooled.envelope
            result = authres.check(spooled.data, peer=env.peer, mail_from=env.mail_from, helo=env.helo,
                                   settings=self.settings)
            self.auth[spooled.key] = (result, result.stamp(spooled.data))
            # No DNS at all (a laptop, a sandbox): the same temperror for every message, not news.
            log.log(logging.DEBUG if result.no_dns else logging.INFO, "%s: spf=%s dkim=%s dmarc=%s%s", env.id,
                    result.spf, result.dkim, result.dmarc, f" ({result.reason})" if result.reason else "")
        return self.auth[spooled.key][0]

    def _back(self, spooled: Spooled, envelope: Any, *, delay: float, what: str) -> None:
        """Put a message back to wait (its replies so far made durable first); wake a worker when due."""
        self._commit_outbox()
        if self.spool.release(spooled, self.worker, delay=delay, envelope=envelope):
            self._count(what)
            try:
                queues.wake_router(self.ctx.conn, self.ctx.names, self.group, [spooled.key], delay=delay,
                                   timeout=queues.route_timeout(self.settings, 1))
            except Exception as exc:  # the sweeper wakes it instead
                log.debug("no delayed wake-up for %s: %s", spooled.key, exc)

    def _park(self, spooled: Spooled, reason: str, *, log_error: bool = False) -> None:
        self._commit_outbox()
        key = self.spool.park(spooled, self.worker, reason)
        self._count("parked")
        (log.error if log_error else log.warning)("%s: parked as %s in %s: %s", spooled.envelope.id, key,
                                                  self.spool.parked, reason)

    # -- the batch's commit --------------------------------------------------

    def _commit_outbox(self) -> list[str]:
        pending = list(self.ctx.pending_outbox)
        if pending:
            self.ctx.outbox.commit(pending)
        return pending

    def _leave_lines(self) -> None:
        try:
            self.following.flush()
        except Exception as exc:  # stale entries: whoever looks next finds them gone and passes them
            log.warning("could not take the handled messages out of their senders' lines: %s", exc)

    def commit(self) -> None:
        """Replies durable (one group commit), then the routed messages leave the spool, then the relay wakes."""
        self._leave_lines()
        pending = self._commit_outbox()
        for spooled in self.done:
            if not self.spool.finish(spooled.key, self.worker):
                log.warning("%s: was taken back from this worker while it ran (thought dead?); it may be "
                            "handled twice", spooled.key)
        self.done.clear()
        self.ctx.pending_outbox.clear()
        # routed / parked / deferred counters (lamson.metrics) ride with the first relay wake-up
        counts = metrics.router_counts(self.outcomes, self.group)
        for name, n in metrics.router_counts(self.counted, self.group).items():
            counts[name] -= n  # a second commit of the same batch counts only what is new
        self.counted = dict(self.outcomes)
        for batch in queues.chunks(pending, queues.MAX_RELAY_BATCH):
            try:
                with self.ctx.conn.pipeline() as pipe:
                    queues.wake_relay(self.ctx.conn, self.ctx.names, batch, pipeline=pipe)
                    ours = metrics.queue(pipe, self.ctx.names, counts) if counts else 0
                    counts = {}
                    metrics.execute(pipe, ours)  # a failed increment never fails the wake-up
            except Exception as exc:  # the replies are in the outbox: the relay's sweeper finds them
                log.warning("could not wake the relay for %d repl(ies): %s", len(batch), exc)
        if counts:
            metrics.record(self.ctx.conn, self.ctx.names, counts)
