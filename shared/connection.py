"""The Redis connection every stage uses, built from ``settings.redis_url``, and its credentials."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import redis


def connect(url: str, *, timeout: float = 5.0) -> redis.Redis:
    """A client with bounded timeouts, so a dead Redis is an error, never a hang.

    Replies are bytes (``decode_responses=False``): rq requires that, and
    mail is bytes.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=max(timeout, 30.0),
        health_check_interval=30,
        retry_on_timeout=False,
    )


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
    # "default" (Redis 6's ACL user that requirepass sets): redis-cli -u reads an empty user as a name.
    user = quote(unquote(parts.username), safe="") if parts.username else "default"
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    password = url_password(url)
    if password is None:
        return url
    parts = urlsplit(url)
    query = "&".join("password=***" if q.startswith("password=") else q for q in parts.query.split("&") if q)
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
    if url_password(url) is not None or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
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
