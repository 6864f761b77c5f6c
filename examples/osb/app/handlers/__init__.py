"""Handler modules: post and comment (router workers), index (the queue worker)."""
