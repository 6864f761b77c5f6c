"""The queue worker's handler: rebuild the front page (app/data/index.html) when a blog changed.

Router workers push a note to ``index-rebuild@HOST`` into the
``queue_config`` Maildir (app/model/services.request_index) after every
publish, delete and comment; the QueueReceiver of config/queue.py routes it
here (settings.queue_handlers). Stateless: the note is an event, not a
conversation, and every rebuild reads everything, so notes may be handled in
any order, twice, or by several workers at once.
"""

import logging

from app.model import services
from lamson.router import route, stateless

log = logging.getLogger(__name__)


@route(f"{services.INDEX_ADDRESS}@(host)")
@stateless
def REBUILD(message, host=None):
    """Write the front page from every blog's posts."""
    path = services.store().render_index()
    log.info("front page rebuilt (%s): %s", (message["subject"] or "").strip(), path)
