"""The one-shot blog: handlers, model (blog store, names, Markdown), templates, data."""
