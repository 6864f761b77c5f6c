"""Start the embedded Redis (the ``redis`` supervisord program), locked down.

The port and bind address come from the settings' ``redis_url`` (so one
environment variable, LAMSON_REDIS_URL, moves every process to another
Redis), data and AOF go under ``run/``. The process execs redis-server, so
supervisord supervises Redis itself, not a wrapper.

Redis is a trust boundary (docs/design.md, invariant 6): the embedded Redis always
requires a password. It is the one ``redis_url`` carries, else the one
generated on first use into ``run/redis.pass`` (mode 0600), which every
Lamson process reads through its settings (:func:`lamson.settings.apply_credentials`).
The password reaches redis-server on its standard input, never on its command
line (``ps`` shows a command line to every local user). Files are created
with umask 077: the AOF holds whole messages.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from lamson.connection import PASSWORD_FILE, ensure_password, url_password


def quoted(value: str) -> str:
    """``value`` as one double-quoted redis.conf argument."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable() and char.isascii():
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
    return '"' + "".join(out) + '"'


def auth_config(redis_url: str, run_dir: str) -> str:
    """The redis.conf lines that make this Redis require ``redis_url``'s credentials.

    No password in the URL: the generated one in ``run_dir/redis.pass`` (created if
    missing). A user name other than ``default`` in the URL becomes an ACL user with
    every right, and the default user is switched off.
    """
    password = url_password(redis_url) or ensure_password(Path(run_dir) / PASSWORD_FILE)
    user = unquote(urlsplit(redis_url).username or "") or "default"
    if user == "default":
        return f"requirepass {quoted(password)}\n"
    return f"user default off\nuser {quoted(user)} on {quoted('>' + password)} ~* &* +@all\n"


def exec_redis(redis_url: str, conf: str, run_dir: str, data_dir: str | None = None) -> None:
    """Replace this process with redis-server configured for ``redis_url``.

    Its data (the AOF) goes to ``data_dir``, by default ``run_dir``; the password file
    stays under ``run_dir``, where every Lamson process looks for it.
    """
    binary = shutil.which("redis-server")
    if not binary:
        print("lamson: redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        raise SystemExit(1)
    url = urlsplit(redis_url)
    if url.scheme not in ("redis", "rediss"):
        print(f"lamson: the embedded Redis needs a redis:// URL, not {url.scheme}://...", file=sys.stderr)
        raise SystemExit(1)
    if conf and not Path(conf).is_file():
        print(f"lamson: no redis config at {conf}", file=sys.stderr)
        raise SystemExit(1)
    os.umask(0o077)  # the AOF (whole messages) and anything else Redis writes: owner only
    data = Path(data_dir or run_dir).resolve()
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The configuration comes on stdin ("-"): the file, then the credentials, so neither the
    # password nor the ACL ever shows on the command line; port, bind and dir follow as options.
    stdin_conf = (f"include {quoted(str(Path(conf).resolve()))}\n" if conf else "") + auth_config(redis_url, run_dir)
    stdin_conf += "protected-mode yes\n"
    args = [binary, "-", "--port", str(url.port or 6379), "--bind", url.hostname or "127.0.0.1",
            "--dir", str(data), "--daemonize", "no"]
    read, write = os.pipe()
    os.write(write, stdin_conf.encode())  # a few hundred bytes: always fits in the pipe
    os.close(write)
    os.dup2(read, 0)
    os.close(read)
    os.execv(binary, args)
