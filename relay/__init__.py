"""The relay: what handlers call to send mail, and the worker that delivers it.

``Relay.deliver(message)`` only enqueues onto ``lamson-outgoing``; handlers
never open SMTP connections (invariant 3). The relay worker
(:mod:`lamson.relay.worker`) delivers to the smart host in ``relay_config``.
"""

from lamson.relay.client import Relay, envelope_of

__all__ = ["Relay", "envelope_of"]
