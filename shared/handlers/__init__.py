"""Handlers that ship with Lamson; list them in ``settings.handlers`` like your own.

``lamson.handlers.log`` logs every message the router sees, as the guide's
``handlers = ['app.handlers.sample', 'lamson.handlers.log']`` shows.
"""
