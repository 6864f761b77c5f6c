"""The relay: what handlers call to send mail, and the worker that delivers it.

``Relay.deliver(message)`` only writes the message into the outbox (a spool
with the incoming mail's lifecycle) and wakes the relay through the namespace's
``outgoing`` rq queue; handlers never open SMTP connections (invariant 3). The
relay worker (:mod:`lamson.relay.worker`, jobs in :mod:`lamson.relay.jobs`)
claims it from the outbox and delivers it to the smart host in ``relay_config``,
parking in ``bounced_dir`` what bounces or expires.
"""

from lamson.relay.client import Relay, envelope_of

__all__ = ["Relay", "envelope_of"]
