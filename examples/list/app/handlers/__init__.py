"""Handler modules; list the ones to load in config/settings.py ``handlers``."""
