"""Start the embedded Redis (the ``redis`` supervisord program).

The port and bind address come from the settings' ``redis_url`` (so one
environment variable, LAMSON_REDIS_URL, moves every process to another
Redis), data and AOF go under ``run/``. The process execs redis-server, so
supervisord supervises Redis itself, not a wrapper.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit


def exec_redis(redis_url: str, conf: str, run_dir: str) -> None:
    """Replace this process with redis-server configured for ``redis_url``."""
    binary = shutil.which("redis-server")
    if not binary:
        print("lamson: redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        raise SystemExit(1)
    url = urlsplit(redis_url)
    if url.scheme not in ("redis", "rediss"):
        print(f"lamson: the embedded Redis needs a redis:// URL, not {redis_url!r}", file=sys.stderr)
        raise SystemExit(1)
    data = Path(run_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    args = [binary]
    if conf:
        if not Path(conf).is_file():
            print(f"lamson: no redis config at {conf}", file=sys.stderr)
            raise SystemExit(1)
        args.append(conf)
    args += ["--port", str(url.port or 6379), "--bind", url.hostname or "127.0.0.1", "--dir", str(data),
             "--daemonize", "no"]
    os.execv(binary, args)
