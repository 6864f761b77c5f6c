from app.model import table
import logging

relay_config = {'host': 'localhost', 'port': 8825}

receiver_config = {'host': 'localhost', 'port': 8823}

database_config = {
    "metadata" : table.metadata,
    "url" : 'sqlite:///app/data/main.db',
    "log_level" : logging.DEBUG
}

handlers = ['app.handlers.sample']

router_defaults = {'host': 'test\\.com'}

template_config = {'dir': 'app', 'module': 'templates'}

# Deferred Processing To Queues: config/queue.py reads these.
queue_config = {'queue': 'run/deferred', 'sleep': 10}

queue_handlers = ['app.handlers.deferred']
