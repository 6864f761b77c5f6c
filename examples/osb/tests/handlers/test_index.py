"""The front page: handlers push notes into the queue, the queue worker's handler rebuilds it."""

from config import settings

from lamson.queue import Queue
from tests.handlers.helpers import confirmed_author, verified_author


def route_queue(router):
    """Route every note in the queue as the queue worker does (its own handlers: queue_handlers)."""
    router.clear_routes()
    router.load(settings.queue_handlers)
    queue = Queue(settings.queue_config["queue"])
    routed = 0
    while True:
        key, note = queue.pop()
        if key is None:
            return routed
        router.deliver(note)
        routed += 1


def test_publishing_and_deleting_rebuild_the_front_page(blog, lamson_router):
    alice, _ = confirmed_author("alice@example.org", subject="Alice's first")
    bob, _ = verified_author("bob@example.net", post_name="hello-world", subject="Bob says hello")
    bob.say("hello-world-delete@osb.test", "bye", expect="Deleted")
    assert not (blog / "index.html").exists()  # only the queue worker writes it

    assert route_queue(lamson_router) == 3
    page = (blog / "index.html").read_text()
    assert "Alice&#39;s first" in page and 'href="http://127.0.0.1:8848/posts/alice.example.org/my-first-post.html"' in page
    assert "Bob says hello" not in page and "bob.example.net" not in page  # his only post is gone
    assert "alice@example.org" not in page
