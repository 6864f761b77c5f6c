"""Configuration: settings.py (plain variables), boot.py (services), testing.py (tests)."""
