"""Lamson: mail applications written like web applications.

The ``lamson`` package is the repository's ``shared/`` folder: what every stage
of the pipeline (receiver, router workers, relay) uses.
"""

__version__ = "2.0.0.dev0"
