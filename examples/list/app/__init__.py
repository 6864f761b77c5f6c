"""The application: handlers, templates, models and data (see the Lamson guide)."""
