"""Router workers: rq workers that load the application once and route spooled mail.

The job function lives in :mod:`lamson.workers.jobs` (a wake-up carrying
spool keys: claim, route in each sender's order, commit replies, finish);
the process entry point in :mod:`lamson.workers.worker`; what router and
relay workers share (liveness, sweeps, rq's loop) in :mod:`lamson.workerbase`.
"""

from lamson.queue import queue_group
from lamson.workers.queue_receiver import QueueReceiver

__all__ = ["QueueReceiver", "queue_group"]
