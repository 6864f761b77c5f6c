"""Settings of the echo benchmark application: ports from the environment.

The benchmark picks free ports for every run, so nothing is fixed here.
"""

import os

receiver_config = {"host": "127.0.0.1", "port": int(os.environ.get("SALMON_ECHO_RECEIVER_PORT", "8823"))}
relay_config = {"host": "127.0.0.1", "port": int(os.environ.get("SALMON_ECHO_RELAY_PORT", "8825"))}
handlers = ["app.handlers.echo"]
router_defaults = {"host": r"test\.com"}
