"""The delivery job: a wake-up carrying outbox keys; claim, send over a kept-open session, finish.

For each reply it claims, the relay worker sends it to the smart host named
in its record (``relay_config`` by default):

* accepted: the file is removed;
* temporary trouble (connection failures, timeouts, 4xx): it goes back to
  wait in the outbox, due after the next interval of ``relay_retries`` (the
  last one repeating), and a delayed wake-up is scheduled; once it has waited
  ``relay_lifetime`` seconds the sender gets one delivery status notification
  (:mod:`lamson.relay.dsn`) and the message is parked in ``bounced_dir``;
* refused for good (5xx): one notification at once, and parked with the reply;
* some recipients deferred while others were accepted: the deferred ones get
  an outbox file of their own, so the accepted ones are not sent twice.

Mail from ``<>`` never gets a notification, and a message parked after its
notification is marked so a requeue does not send a second one. A message
whose workers died ``max_attempts`` times is parked too.
"""

from __future__ import annotations

import logging
import smtplib
import time
from dataclasses import replace
from typing import Any

from lamson import logs, loops, metrics, queues
from lamson.envelope import ORIGIN, Envelope
from lamson.parked import park as write_parked
from lamson.relay import dkim, dsn
from lamson.relay import mx as mx
from lamson.relay.smtp import Connections, SessionError, normalise_eol, smarthost_security
from lamson.runtime import Runtime
from lamson.spool import Spooled, UnreadableRecord

log = logging.getLogger("lamson.relay")

TRIES = "tries"
DSN_SENT = "dsn_sent"


def send(runtime: Runtime, keys: list[str]) -> str:
    """Deliver the outbox messages ``keys`` (none: whatever is due), with the relay worker's runtime."""
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        log.error("malformed relay wake-up dropped: %r", keys)
        return "malformed"
    return Delivery(runtime).run(keys)


class Delivery:
    """One job's deliveries."""

    def __init__(self, ctx: Runtime) -> None:
        self.ctx = ctx
        self.outbox = ctx.spool("outgoing")
        self.worker = ctx.worker_id
        settings = ctx.settings
        config = ctx.config
        if ctx.smtp is None:
            ctx.smtp = Connections(timeout=float(config.relay_timeout))
        self.smtp: Connections = ctx.smtp
        self.default = dict(config.relay_config)
        # Delivery by MX (lamson.relay.mx) when relay_config says "mx": True or names no host.
        self.mx = mx.MXSender(self.smtp, settings, ctx.conn, ctx.names) if mx.enabled(self.default) else None
        self.retries = list(config.relay_retries) or [30]
        self.lifetime = float(config.relay_lifetime)
        self.max_attempts = int(config.max_attempts)
        self.trace = loops.trace_name(config, ctx.names)
        self.rate_limit = int(config.reply_rate_limit or 0)
        self.dkim = dkim.Signer(settings)  # DKIM signing (lamson.relay.dkim), if dkim_config says so
        self.outcomes: dict[str, int] = {}

    def run(self, keys: list[str]) -> str:
        if not keys:  # whatever is due
            keys = self.outbox.waiting(due=True)[:queues.MAX_BATCH]
        claimed = []
        for key in dict.fromkeys(keys):
            try:
                got = self.outbox.claim(key, self.worker)
            except UnreadableRecord as exc:
                parked = self.outbox.park_unreadable(key, self.worker, str(exc))
                log.error("%s; parked as %s in %s", exc, parked, self.outbox.parked)
                self.outcomes["parked"] = self.outcomes.get("parked", 0) + 1
                continue
            except ValueError as exc:
                log.error("relay wake-up names %r: %s", key, exc)
                continue
            if got is not None:
                claimed.append(got)
        latencies: list[float] = []  # accept -> delivered (lamson.metrics)
        try:
            for index, spooled in enumerate(claimed):
                if self.ctx.stopping:  # the process is stopping: the rest goes back to wait for the next relay
                    rest = [s.key for s in claimed[index:] if self.outbox.release(s, self.worker)]
                    self.wake_later_many(rest)
                    self.outcomes["handed back"] = len(rest)
                    break
                # Its lines name the incoming message it answers (its id, docs/operations.md "Logs").
                with logs.about(spooled.envelope.extra.get(ORIGIN)):
                    outcome = self.deliver(spooled)
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
                if outcome == "delivered":
                    latencies.append(time.time() - metrics.accepted_at(spooled.envelope))
        finally:
            metrics.record(self.ctx.conn, self.ctx.names, metrics.relay_counts(self.outcomes), latencies)
        return ", ".join(f"{n} {what}" for what, n in self.outcomes.items()) or "nothing due"

    def destination(self, env: Envelope) -> tuple[str, int]:
        host = env.extra.get("relay_host") or self.default.get("host", "127.0.0.1")
        port = int(env.extra.get("relay_port") or self.default.get("port", 25))
        return str(host), port

    def deliver(self, spooled: Spooled) -> str:
        env = spooled.envelope
        if env.attempts >= self.max_attempts:
            self.park(spooled, f"{env.attempts} relay workers died holding it; parked after "
                               f"max_attempts={self.max_attempts}")
            return "parked"
        host, port = self.destination(env)
        rcpts = list(env.rcpt_tos)
        by_mx = self.mx is not None and self.mx.applies(host, port)
        if self.mx is not None and by_mx:  # one domain per outbox file: the others get files of their own
            rcpts = mx.split_by_domain(self.outbox, spooled, rcpts, self.ctx.conn, self.ctx.names)
            spooled, env = replace_spooled(spooled, rcpt_tos=tuple(rcpts)), replace(env, rcpt_tos=tuple(rcpts))
            host, port = mx.domain_of(rcpts[0]), self.mx.port
        limited = self.rate_limited(spooled)
        if limited:
            reason = (f"reply rate limit: more than reply_rate_limit={self.rate_limit} automatic messages "
                      f"a minute to {', '.join(f'<{r}>' for r in limited)} (a mail loop?)")
            if len(limited) == len(rcpts):
                self.park(spooled, reason)
                return "rate-limited"
            self.park_copy(spooled, limited, reason)
            rcpts = [r for r in rcpts if r not in limited]
        # The trace goes over the bytes actually sent (Bcc already removed by Relay.envelope).
        data = loops.add_traces(normalise_eol(spooled.data), self.trace, int(env.extra.get(loops.LOOP, "0") or 0))
        try:  # signed last, over exactly the bytes sent
            data = self.dkim.sign(data, spooled.key)
        except dkim.KeyUnavailable as exc:  # nothing goes out unsigned for want of a key: it waits
            log.error("%s not sent: %s", spooled.key, exc)
            return self.temporary(spooled, rcpts, host, port, 0, f"cannot sign with DKIM: {exc}")
        try:
            if self.mx is not None and by_mx:
                refused = self.mx.send(host, port, env.mail_from, rcpts, data)
            else:  # TLS, AUTH, LMTP as relay_config (and the record's flags) say
                refused = self.smtp.send(host, port, env.mail_from, rcpts, data,
                                         smarthost_security(self.default, env.extra, host, port))
        except smtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients
        except smtplib.SMTPResponseException as exc:
            reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
                else str(exc.smtp_error)
            if 500 <= exc.smtp_code < 600:
                log.error("5xx from %s:%s for %s: %s %s", host, port, rcpts, exc.smtp_code, reply)
                sent = self.bounce(spooled, [dsn.Failure(r, exc.smtp_code, reply) for r in rcpts], host, port)
                self.park(replace_spooled(spooled, rcpt_tos=tuple(rcpts)), f"refused by {host}:{port}: "
                          f"{exc.smtp_code} {reply}", dsn_sent=sent)
                return "bounced"
            return self.temporary(spooled, rcpts, host, port, exc.smtp_code, reply)
        except SessionError as exc:  # TLS, certificate, credentials: an operator fixes it, retried meanwhile
            log.error("%s not sent: %s", spooled.key, exc)
            return self.temporary(spooled, rcpts, host, port, 0, str(exc))
        except (smtplib.SMTPException, OSError) as exc:
            return self.temporary(spooled, rcpts, host, port, 0, f"cannot deliver to {host}:{port}: {exc!r}")

        deferred = [r for r, (code, _) in refused.items() if code < 500]
        failed = [r for r, (code, _) in refused.items() if code >= 500]
        accepted = len(rcpts) - len(refused)
        if deferred and accepted == 0 and not failed:
            return self.temporary(spooled, rcpts, host, port, refused[deferred[0]][0], describe(refused))
        sent = False
        if failed:
            log.error("5xx for %s: %s", failed, describe({r: refused[r] for r in failed}))
            sent = self.bounce(spooled, [dsn.Failure(r, refused[r][0], refused[r][1].decode("utf-8", "replace"))
                                         for r in failed], host, port)
        if deferred:
            self.split_deferred(spooled, deferred, host, port, describe({r: refused[r] for r in deferred}))
        if failed:
            self.park(replace_spooled(spooled, rcpt_tos=tuple(failed)),
                      f"refused by {host}:{port}: {describe({r: refused[r] for r in failed})}", dsn_sent=sent)
        else:
            self.outbox.finish(spooled.key, self.worker)
        log.info("delivered %s from=<%s> to %d of %d recipient(s) via %s:%s", spooled.key, env.mail_from,
                 accepted, len(rcpts), host, port)
        return "delivered" if accepted else "refused"

    def temporary(self, spooled: Spooled, rcpts: list[str], host: str, port: int, code: int, text: str) -> str:
        """Wait and try again; once the lifetime is over, tell the sender and park it."""
        env = spooled.envelope
        waited = time.time() - env.received_at
        if waited >= self.lifetime:
            log.error("giving up on %s after %.0fs of temporary failures: %s %s", rcpts, waited, code, text)
            sent = self.bounce(spooled, [dsn.Failure(r, code, text) for r in rcpts], host, port, expired=True)
            self.park(spooled, f"expired after {waited:.0f}s (relay_lifetime); last: {code} {text}", dsn_sent=sent)
            return "expired"
        tries = int(env.extra.get(TRIES, "0")) + 1
        delay = self.retries[min(tries - 1, len(self.retries) - 1)]
        bumped = replace(env, rcpt_tos=tuple(rcpts), extra={**env.extra, TRIES: str(tries)})
        log.warning("%s to %s deferred (%s %s); try %d again in %ss", spooled.key, rcpts, code, text, tries + 1, delay)
        if self.outbox.release(spooled, self.worker, delay=delay, envelope=bumped):
            self.wake_later(spooled.key, delay)
        return "deferred"

    def split_deferred(self, spooled: Spooled, rcpts: list[str], host: str, port: int, text: str) -> None:
        """Recipients the server deferred while it accepted others: an outbox file of their own, due later."""
        env = spooled.envelope
        tries = int(env.extra.get(TRIES, "0")) + 1
        delay = self.retries[min(tries - 1, len(self.retries) - 1)]
        key = self.outbox.put(replace(env, rcpt_tos=tuple(rcpts), extra={**env.extra, TRIES: str(tries)}),
                              spooled.data, delay=delay)
        log.warning("recipients %s deferred by %s:%s (%s); queued again as %s in %ss", rcpts, host, port, text,
                    key, delay)
        self.wake_later(key, delay)

    def rate_limited(self, spooled: Spooled) -> list[str]:
        """The recipients of automatic mail over ``reply_rate_limit`` (counted on the first try).

        Counted in the minute the message it answers was accepted, not the minute it is
        sent: a backlog released at once (after a Redis outage) then counts as the mail
        arrived, not as a burst, while a loop, whose every turn is accepted anew, is caught.
        """
        env = spooled.envelope
        if not env.extra.get(loops.AUTO) or env.extra.get(TRIES) or self.rate_limit <= 0:
            return []
        accepted = metrics.accepted_at(env)
        try:
            return [r for r in env.rcpt_tos
                    if loops.over_rate(self.ctx.conn, self.ctx.names, r, self.rate_limit, now=accepted) is not None]
        except Exception as exc:  # Redis away: no router can route either, so no loop runs meanwhile
            log.warning("reply rate not checked for %s (%s); sending", spooled.key, exc)
            return []

    def park_copy(self, spooled: Spooled, rcpts: list[str], reason: str) -> None:
        """Park a copy of a claimed reply for some of its recipients (the others are sent)."""
        record = replace(spooled.envelope, rcpt_tos=tuple(rcpts))
        key = write_parked(self.outbox.parked, record, reason, spooled.data)
        log.warning("%s for %s parked as %s in %s: %s", spooled.key, rcpts, key, self.outbox.parked, reason)

    def wake_later_many(self, keys: list[str]) -> None:
        for batch in queues.chunks(keys, queues.MAX_RELAY_BATCH):
            try:
                queues.wake_relay(self.ctx.conn, self.ctx.names, batch)
            except Exception as exc:  # the sweeper finds them
                log.debug("no wake-up for %d handed-back repl(ies): %s", len(batch), exc)

    def wake_later(self, key: str, delay: float) -> None:
        try:
            queues.wake_relay(self.ctx.conn, self.ctx.names, [key], delay=delay)
        except Exception as exc:  # the sweeper finds it when due
            log.debug("no delayed wake-up for %s: %s", key, exc)

    def bounce(self, spooled: Spooled, failures: list[dsn.Failure], host: str, port: int, *,
               expired: bool = False) -> bool:
        """Put one notification to the sender in the outbox (never for ``<>``, never twice)."""
        env = spooled.envelope
        if not env.mail_from:
            log.warning("no delivery status notification for %s: the sender was <>",
                        [f.recipient for f in failures])
            return False
        if env.extra.get(DSN_SENT):
            return False
        report = dsn.build(spooled.data, env.mail_from, failures, remote=f"{host}:{port}", expired=expired,
                           arrived=env.received_at)
        extra = {k: v for k, v in env.extra.items() if k.startswith("relay_")}
        extra[loops.AUTO] = "1"  # a notification is automatic mail too: rate-limited, and it inherits the trace
        if env.extra.get(ORIGIN):
            extra[ORIGIN] = env.extra[ORIGIN]  # still the story of that message (lamson.logs)
        extra[loops.LOOP] = str(max(int(env.extra.get(loops.LOOP, "0") or 0), loops.count_traces(spooled.data, self.trace)))
        record = Envelope(mail_from="", rcpt_tos=(env.mail_from,), queue="outgoing", extra=extra)
        key = self.outbox.put(record, report.as_bytes())
        try:
            queues.wake_relay(self.ctx.conn, self.ctx.names, [key])
        except Exception as exc:
            log.debug("no wake-up for notification %s: %s", key, exc)
        log.warning("delivery status notification %s queued for <%s> about %s", key, env.mail_from,
                    [f.recipient for f in failures])
        return True

    def park(self, spooled: Spooled, reason: str, *, dsn_sent: bool = False) -> None:
        if dsn_sent:
            spooled = Spooled(spooled.key, replace(spooled.envelope, extra={**spooled.envelope.extra,
                                                                            DSN_SENT: "1"}), spooled.data)
        key = self.outbox.park(spooled, self.worker, reason)
        log.warning("%s parked as %s in %s: %s", spooled.key, key, self.outbox.parked, reason)


def replace_spooled(spooled: Spooled, **changes: Any) -> Spooled:
    return Spooled(spooled.key, replace(spooled.envelope, **changes), spooled.data)


def describe(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"<{r}> {code} {msg.decode('utf-8', 'replace')}" for r, (code, msg) in refused.items())
