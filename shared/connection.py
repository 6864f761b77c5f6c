"""The Redis connection every stage uses, built from ``settings.redis_url``, and its credentials."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import redis

#: ``redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB][?sentinel_password=...]``:
#: the primary that the Sentinels at HOST:PORT name for SERVICE, followed across failovers.
SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelURL:
    """What a ``redis+sentinel://`` URL names: where the Sentinels are and how to log in."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def is_sentinel(url: str) -> bool:
    return urlsplit(url).scheme == SENTINEL_SCHEME


def parse_sentinel_url(url: str) -> SentinelURL:
    """Read a ``redis+sentinel://`` URL; ValueError says what is wrong with it.

    The user and password are the data nodes' (the primary's and replicas'); the
    Sentinels' own, if they require one, are the ``sentinel_username`` and
    ``sentinel_password`` query parameters. Sentinels listen on 26379 by default.
    """
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
        elif item.count(":") == 1:
            host, _, port_text = item.partition(":")
        else:
            host, port_text = item, ""
        try:
            port = int(port_text) if port_text else 26379
        except ValueError:
            raise ValueError(f"bad Sentinel address {item!r}") from None
        sentinels.append((host, port))
    if not sentinels:
        raise ValueError("no Sentinel address (redis+sentinel://HOST:PORT,HOST:PORT/SERVICE)")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("the path must be /SERVICE or /SERVICE/DB (the Sentinels' name of the primary)")
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise ValueError(f"bad database number {path[1]!r}") from None
    query = dict(parse_qsl(parts.query))
    user, has_password, password = userinfo.partition(":")
    return SentinelURL(
        sentinels=sentinels, service=unquote(path[0]), db=db,
        username=unquote(user) or None,
        password=unquote(password) if has_password and password else query.get("password") or None,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
    )


def connect(url: str, *, timeout: float = 5.0) -> redis.Redis:
    """A client with bounded timeouts, so a dead Redis is an error, never a hang.

    Replies are bytes (``decode_responses=False``): rq requires that, and
    mail is bytes. A ``redis+sentinel://`` URL gives a client of the primary the
    Sentinels name: after a failover its next connection goes to the new primary
    (a command in flight fails with ConnectionError, which every stage already
    survives by waiting and retrying).
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": max(timeout, 30.0),
        "health_check_interval": 30,
        "retry_on_timeout": False,
    }
    if is_sentinel(url):
        from redis.sentinel import Sentinel

        where = parse_sentinel_url(url)
        asking: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
        if where.sentinel_password:
            asking.update(username=where.sentinel_username, password=where.sentinel_password)
        sentinel = Sentinel(where.sentinels, sentinel_kwargs=asking, **options)
        master = sentinel.master_for(where.service, redis_class=redis.Redis, db=where.db,
                                     username=where.username, password=where.password)
        return cast(redis.Redis, master)  # master_for() has no return annotation; it makes a redis_class
    return redis.Redis.from_url(url, **options)


# Replies of a connection from connect() are bytes; redis-py's types also allow the
# str replies of a decode_responses=True client. These read either, typed.


def text(value: bytes | str) -> str:
    """One reply (a key, a member, a field value) as text."""
    return value.decode() if isinstance(value, bytes) else value


def data(value: bytes | str | None) -> bytes:
    """One reply as bytes, ``b""`` for a missing one (nil)."""
    if value is None:
        return b""
    return value if isinstance(value, bytes) else value.encode()


def members(reply: Iterable[object]) -> list[str]:
    """The members of a sorted-set range read without scores, as text."""
    found = []
    for member in reply:
        if not isinstance(member, bytes | str):
            raise TypeError(f"expected a member, got {member!r} (a range read with scores?)")
        found.append(text(member))
    return found


# Credentials. The embedded Redis (``lamson redis``) requires a password: the one in
# ``redis_url`` when it has one, else one generated on first use into PASSWORD_FILE under
# ``run_dir``. Every process gets it the same way: lamson.settings fills the file's
# password into a ``redis_url`` that has none (with_credentials), so connect() always
# gets a complete URL and nobody types a password.

#: The generated password of the embedded Redis, under the settings' ``run_dir`` (mode 0600).
PASSWORD_FILE = "redis.pass"


def url_password(url: str) -> str | None:
    """The password a redis://, rediss:// or unix:// URL carries, or None."""
    parts = urlsplit(url)
    if parts.password:
        return unquote(parts.password)
    for name, value in parse_qsl(parts.query):
        if name == "password" and value:
            return value
    return None


def with_password(url: str, password: str) -> str:
    """``url`` carrying ``password`` (the default user's); a URL with its own password is kept."""
    if url_password(url) is not None:
        return url
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = "&".join(q for q in (parts.query, "password=" + quote(password, safe="")) if q)
        return url.split("?", 1)[0] + "?" + query  # (urlunsplit would drop unix:///'s empty host)
    if parts.scheme == SENTINEL_SCHEME:  # several HOST:PORT, kept as written
        userinfo, _, hosts = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0] or "default"
        return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{hosts}"))
    # "default" (Redis 6's ACL user that requirepass sets): redis-cli -u reads an empty user as a name.
    user = quote(unquote(parts.username), safe="") if parts.username else "default"
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if url_password(url) is None and "password=" not in parts.query:
        return url
    secret = ("password=", "sentinel_password=")
    query = "&".join(q.split("=", 1)[0] + "=***" if q.startswith(secret) else q for q in parts.query.split("&") if q)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = userinfo.split(":", 1)[0] + ":***@" + hostport
    if parts.scheme == "unix":
        return url.split("?", 1)[0] + "?" + query
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def password_files(run_dir: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where the generated password may be: under ``run_dir`` in the current directory (where
    every supervisord program runs), then under the project root (``lamson status -root``)."""
    run = Path(run_dir)
    if run.is_absolute():
        return [run / PASSWORD_FILE]
    found = [(Path.cwd() / run / PASSWORD_FILE)]
    if root is not None and (Path(root) / run / PASSWORD_FILE) not in found:
        found.append(Path(root) / run / PASSWORD_FILE)
    return found


def read_password(path: str | os.PathLike[str]) -> str | None:
    """The password kept in ``path``; None when there is no such file (or it is empty)."""
    try:
        value = Path(path).read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return value or None


def with_credentials(url: str, run_dir: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """``url`` with the embedded Redis's generated password when it carries none and the file exists."""
    if url_password(url) is not None or urlsplit(url).scheme not in ("redis", "rediss", "unix", SENTINEL_SCHEME):
        return url
    for path in password_files(run_dir, root):
        password = read_password(path)
        if password:
            return with_password(url, password)
    return url


def ensure_password(path: str | os.PathLike[str]) -> str:
    """The password in ``path``, generated into a new 0600 file (its folder 0700) if there is none."""
    path = Path(path)
    existing = read_password(path)
    if existing:
        return existing
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (password + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never replaces a password another process wrote meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return read_password(path) or password


#: Errors that say Redis cannot serve right now (down, failing over, loading, out of memory,
#: refusing writes), nothing about the message being handled: whoever gets one waits and tries
#: again, and the message is not charged an attempt.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError, redis.exceptions.OutOfMemoryError,
    redis.exceptions.MasterDownError, redis.exceptions.TryAgainError,
)
#: The same, for replies redis-py has no class for (a failed AOF write, too few replicas).
_UNAVAILABLE_CODES = frozenset({"MISCONF", "NOREPLICAS", "LOADING", "READONLY", "OOM", "MASTERDOWN", "TRYAGAIN"})


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means Redis cannot serve now (see :data:`UNAVAILABLE`).

    A refused command inside a pipeline or MULTI surfaces as "Command # N (...) of pipeline
    caused error: CODE ..." or as an ExecAbortError whose context is that error, so the
    exception's chain is read too.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UNAVAILABLE):
            return True
        if isinstance(current, redis.ResponseError):
            text = str(current)
            code = text.split("caused error: ", 1)[1] if "caused error: " in text else text
            if code.split(" ", 1)[0] in _UNAVAILABLE_CODES:
                return True
        if current.__cause__ is not None:
            current = current.__cause__
        else:
            current = None if current.__suppress_context__ else current.__context__
    return False
