"""The blog itself, apart from mail: names, the store, Markdown rendering, and the services handlers share."""
