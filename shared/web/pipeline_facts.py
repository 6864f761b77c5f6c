"""What the pipeline page shows, read from where Lamson already keeps it (docs/design.md, "The pipeline").

Every function here blocks (Redis, supervisord's XML-RPC, directory scans) and is called from a worker
thread by :mod:`lamson.web.pipeline_api`, under a time limit. None of them computes a fact of its own:
the programs are supervisord's (lamson.cli.supervision), the spool gauges the metrics exporter's
(:func:`lamson.metrics.stage_gauge`), the queues and workers rq's through :mod:`lamson.rqcompat`, the
conversation states the router's :class:`lamson.router.state.RedisStorage`, parked mail
:func:`lamson.parked.read`'s and a requeue :func:`lamson.requeue.requeue`, as ``lamson queue -requeue``
does it.
"""

from __future__ import annotations

import dataclasses
import os
import time
import xmlrpc.client
from collections import Counter
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

from lamson import maildir
from lamson.typed_settings import Settings
from lamson.web.context import WebContext

#: Most conversation states listed (the hash is scanned, never read whole).
MAX_STATES = 1000
#: Most parked messages listed, newest first.
MAX_PARKED = 500
#: Bytes of a parked file read to list it: its X-Lamson-* lines and the message's headers.
HEAD_BYTES = 64 * 1024
#: Parked files described and remembered (each once: every listing counts all of them by group).
MAX_CACHED = 50_000
#: The parked Maildirs, by the mailbox names the mail API gives them (lamson.web.mail_api).
PARKED_MAILBOXES = ("undeliverable", "bounced")


class Unavailable(Exception):
    """A service the answer needs (Redis, supervisord) cannot be reached; the text says which and why."""


class NotFound(Exception):
    """The program, mailbox or message named does not exist."""


class Refused(Exception):
    """The request cannot be done as asked (a key that is not a Maildir name, a record without envelope)."""


def settings(ctx: WebContext) -> Settings:
    """The settings with their folders resolved against the project root (the web process may run
    elsewhere), made once per context: every spool and parked folder below is read through them."""
    found = ctx.services.get("pipeline.settings")
    if not isinstance(found, Settings):
        s = ctx.settings
        found = dataclasses.replace(s, spool_dir=str(ctx.path(s.spool_dir)), outbox_dir=str(ctx.path(s.outbox_dir)),
                                    undeliverable_dir=str(ctx.path(s.undeliverable_dir)),
                                    bounced_dir=str(ctx.path(s.bounced_dir)), queue_dir=str(ctx.path(s.queue_dir)),
                                    run_dir=str(ctx.path(s.run_dir)))
        ctx.services["pipeline.settings"] = found
    return found


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# -- Redis -----------------------------------------------------------------------------------------


def redis_status(ctx: WebContext) -> tuple[bool, str | None]:
    """Whether the application's Redis answers a PING now, and why not."""
    if ctx.conn is None:
        return False, "no Redis connection: none configured, or none reachable when lamson web started"
    try:
        ctx.conn.ping()
    except Exception as exc:  # redis-py's errors, OSError, a URL it cannot use
        return False, f"Redis does not answer: {one_line(exc)}"
    return True, None


def _conn(ctx: WebContext) -> Any:
    if ctx.conn is None:
        raise Unavailable("no Redis connection")
    return ctx.conn


# -- programs (supervisord) ------------------------------------------------------------------------


def _rpc(ctx: WebContext, timeout: float) -> Any:
    from lamson.cli.supervision import socket_rpc

    sock = ctx.supervisor_socket
    if sock is None:
        raise Unavailable("supervisord does not run this project (no socket to ask)")
    if not sock.exists():
        raise Unavailable(f"supervisord is not running: no socket at {sock}")
    return socket_rpc(sock, timeout)


def programs(ctx: WebContext, timeout: float = 3.0) -> list[dict[str, Any]]:
    """supervisord's processes: name (``group:name`` for numbered ones), group, state, uptime, pid.

    Raises :class:`Unavailable` when supervisord does not answer.
    """
    from lamson.cli.supervision import full_name, uptime_seconds

    try:
        infos = _rpc(ctx, timeout).supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error) as exc:
        raise Unavailable(f"supervisord does not answer on {ctx.supervisor_socket}: {one_line(exc)}") from None
    return [{"name": full_name(info), "group": info["group"], "state": info["statename"],
             "uptime": uptime_seconds(info), "pid": info.get("pid") or None,
             "description": info.get("description", "")} for info in infos]


#: supervisord's fault code for stopping a process that is not running (supervisor.xmlrpc.Faults).
_NOT_RUNNING = 70
#: ... and for a name it does not know.
_BAD_NAME = 10


def restart(ctx: WebContext, name: str, timeout: float = 60.0) -> None:
    """Stop (if running) then start one program, waiting for each as supervisorctl restart does."""
    from lamson.cli.supervision import full_name

    server = _rpc(ctx, timeout).supervisor
    try:
        known = {full_name(info) for info in server.getAllProcessInfo()}
        if name not in known:
            raise NotFound(f"supervisord runs no program {name!r}")
        try:
            server.stopProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != _NOT_RUNNING:
                raise
        server.startProcess(name, True)
    except xmlrpc.client.Fault as fault:
        if fault.faultCode == _BAD_NAME:
            raise NotFound(f"supervisord runs no program {name!r}") from None
        raise Refused(f"supervisord refused: {fault.faultString}") from None
    except (OSError, xmlrpc.client.Error) as exc:
        raise Unavailable(f"supervisord does not answer on {ctx.supervisor_socket}: {one_line(exc)}") from None


# -- stages (spool and outbox) ---------------------------------------------------------------------


def _queue_folders(ctx: WebContext, conf: Settings, announced: set[str]) -> dict[str, Path]:
    """The folders of the Maildir queue groups some QueueReceiver announced (``q-posts``: ``run/posts``),
    looked for among the project's run/ folders and ``queue_dir``; a group whose folder is elsewhere is
    not found (its name alone does not say where it is)."""
    from lamson.groups import queue_group

    candidates = [Path(conf.queue_dir)]
    try:
        with os.scandir(conf.run_dir) as entries:
            candidates += [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        pass
    found = {}
    for folder in candidates:
        group = queue_group(folder)
        if group in announced and group not in found and (folder / "new").is_dir():
            found[group] = folder
    return found


def stages(ctx: WebContext, redis_ok: bool, parked_by_group: Counter[str]) -> tuple[list[dict[str, Any]],
                                                                                      list[str]]:
    """Each worker group's spool (lamson.metrics.stage_gauge) with the messages parked from it; and what
    could not be looked at. Maildir queue groups (``q-*``) are the ones announced in Redis."""
    from lamson.metrics import spool_groups, stage_gauge
    from lamson.names import names_for
    from lamson.queue import receivers_key
    from lamson.spool import MaildirSpool

    conf = settings(ctx)
    conn = ctx.conn if redis_ok else None
    now = time.time()
    spools: list[tuple[str, Any]] = [(group, None) for group in spool_groups(conf)]
    problems: list[str] = []
    if conn is not None:
        try:
            announced = {m.decode() if isinstance(m, bytes) else str(m)
                         for m in conn.smembers(receivers_key(names_for(conf)))}
        except Exception as exc:
            announced = set()
            problems.append(f"Maildir queues: {one_line(exc)}")
        for group, folder in sorted(_queue_folders(ctx, conf, announced).items()):
            spools.append((group, MaildirSpool(folder, group=group, parked=conf.undeliverable_dir, plain=True)))
    found = []
    for group, spool in spools:
        if conf.spool == "redis" and spool is None and conn is None:
            problems.append(f"{group}: the Redis spool cannot be read without Redis")
            continue
        try:
            gauge = stage_gauge(conf, conn, group, now, spool=spool)
        except Exception as exc:
            problems.append(f"{group}: {one_line(exc)}")
            continue
        found.append({"name": group, "waiting": gauge.waiting, "in_flight": gauge.in_flight,
                      "parked": parked_by_group.get(group, 0), "oldest_waiting_age": gauge.oldest_waiting_age})
    return found, problems


# -- rq queues and workers -------------------------------------------------------------------------


def queues_and_workers(ctx: WebContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What ``rq info`` shows of the application's namespace: its queues and its workers."""
    from lamson import rqcompat
    from lamson.names import names_for

    conn = _conn(ctx)
    names = names_for(settings(ctx))
    workers = rqcompat.workers(conn, names.namespace)
    serving = Counter(q for w in workers for q in w.queues)
    queues = [{"name": name, "jobs": waiting, "workers": serving.get(name, 0), "failed": failed,
               "scheduled": scheduled, "started": started}
              for name, waiting, failed, scheduled, started
              in rqcompat.queue_counts(conn, names.namespace, [names.incoming, names.outgoing])]
    return queues, [{"name": w.name, "state": w.state, "queues": w.queues, "current_job": w.current_job,
                     "successful": w.successful, "failed": w.failed,
                     "birth": w.birth.isoformat() if w.birth else None} for w in workers]


# -- conversation states ---------------------------------------------------------------------------


def states(ctx: WebContext, limit: int = MAX_STATES) -> dict[str, Any]:
    """The conversations not in START, from the router's state store (the first ``limit`` the hash scan
    gives), with counts per handler module and state over those listed."""
    from lamson.names import names_for
    from lamson.router.state import RedisStorage

    conf = settings(ctx)
    store = RedisStorage(_conn(ctx), prefix=conf.state_prefix or names_for(conf).key(""))
    listed: list[dict[str, str]] = []
    for key, sender, state in store.conversations():
        if len(listed) >= limit:
            break
        listed.append({"module": key, "sender": sender, "state": state})
    total = int(store.conn.hlen(store.hash))
    by_module: dict[str, dict[str, int]] = {}
    for item in listed:
        counts = by_module.setdefault(item["module"], {})
        counts[item["state"]] = counts.get(item["state"], 0) + 1
    return {"states": listed, "by_module": by_module, "total": total, "truncated": total > len(listed),
            "limit": limit}


# -- parked mail -----------------------------------------------------------------------------------


def parked_folder(ctx: WebContext, mailbox: str) -> Path:
    conf = settings(ctx)
    if mailbox == "undeliverable":
        return Path(conf.undeliverable_dir)
    if mailbox == "bounced":
        return Path(conf.bounced_dir)
    raise NotFound(f"no parked mailbox {mailbox!r} (there are {', '.join(PARKED_MAILBOXES)})")


def key_of(name: str) -> str:
    """A Maildir file name's key: without the ``:2,FLAGS`` info a mail reader adds in cur/."""
    return name.split(":2,", 1)[0]


def _header(value: Any) -> str:
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        return str(value)


def _describe(ctx: WebContext, mailbox: str, path: Path, now: float) -> dict[str, Any]:
    """One parked file as listed: its reason and origin group (lamson.parked.read), the message's
    From/To/Subject. Read once: a parked file never changes, so it is cached by name, size and time."""
    from lamson.parked import NotParked, read
    from lamson.spool import key_time

    stat = path.stat()
    cache: dict[tuple[str, int, int], dict[str, Any]] = ctx.services.setdefault("pipeline.parked", {})
    ident = (str(path), stat.st_size, stat.st_mtime_ns)
    described = cache.get(ident)
    if described is None:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
        try:
            found = read(head)
            envelope, reason, message = found.envelope, found.reason, found.message
        except NotParked:
            envelope, reason, message = None, None, head
        headers = BytesHeaderParser(policy=compat32).parsebytes(message, headersonly=True)
        key = key_of(path.name)
        described = {
            "id": f"{mailbox}/{key}", "mailbox": mailbox, "key": key, "reason": reason,
            "from": _header(headers.get("From")) or (envelope.mail_from if envelope else ""),
            "to": _header(headers.get("To")) or (", ".join(envelope.rcpt_tos) if envelope else ""),
            "subject": _header(headers.get("Subject")),
            "group": (envelope.queue or "incoming") if envelope else None,
            "parked_at": key_time(key) or stat.st_mtime,
        }
        if len(cache) >= MAX_CACHED:  # files requeued or removed long ago stay until then
            cache.clear()
        cache[ident] = described
    return {**described, "age": max(0.0, now - described["parked_at"])}


def parked(ctx: WebContext, limit: int = MAX_PARKED) -> dict[str, Any]:
    """The parked messages of every parked Maildir, newest first (the first ``limit``), and how many
    each origin group has in all (the stages' ``parked``)."""
    now = time.time()
    files: list[tuple[tuple[int, int, int, str], str, Path]] = []
    for mailbox in PARKED_MAILBOXES:
        folder = parked_folder(ctx, mailbox)
        for sub in ("new", "cur"):
            try:
                names = maildir.keys(folder, sub)
            except maildir.BadKey:  # a symlinked new/ or cur/: not read through
                continue
            files += [(maildir.key_order(name), mailbox, folder / sub / name) for name in names]
    files.sort(key=lambda f: f[0], reverse=True)
    listed: list[dict[str, Any]] = []
    by_group: Counter[str] = Counter()
    for i, (_, mailbox, path) in enumerate(files):
        try:
            item = _describe(ctx, mailbox, path, now)
        except FileNotFoundError:  # requeued or removed meanwhile
            continue
        if item["group"]:
            by_group[item["group"]] += 1
        if i < limit:
            listed.append({k: v for k, v in item.items() if k != "parked_at"})
    return {"parked": listed, "total": len(files), "truncated": len(files) > limit, "by_group": dict(by_group)}


def requeue(ctx: WebContext, mailbox: str, key: str) -> dict[str, Any]:
    """Send one parked message back where it came from, as ``lamson queue -requeue KEY`` does
    (lamson.requeue.requeue, then the parked copy removed); where it went, in words and as a key."""
    import redis

    from lamson.parked import NotParked, read
    from lamson.queue import Queue
    from lamson.requeue import destination
    from lamson.requeue import requeue as put_back

    folder = parked_folder(ctx, mailbox)
    queue = Queue(folder)
    try:
        data = queue.get_bytes(key)
    except maildir.BadKey as exc:
        raise Refused(str(exc)) from None
    if data is None:
        raise NotFound(f"no message {key!r} in {mailbox}")
    conf: Any = settings(ctx)  # lamson.requeue reads the settings as open_spool does: a Settings will do
    try:
        found = read(data)
        envelope = found.sent_back()
        where = destination(envelope)
        new_key = put_back(data, conf, _conn(ctx))
    except NotParked as exc:
        raise Refused(f"{key}: {exc}") from None
    except (redis.RedisError, OSError) as exc:
        raise Unavailable(f"Redis does not answer: {one_line(exc)}") from None
    queue.remove(key)
    return {"ok": True, "to": where, "group": envelope.queue or "incoming", "key": new_key,
            "was": found.reason or None}
