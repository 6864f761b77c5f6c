"""The blog store on its own: names, owners and paths."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from app.model import names
from app.model.store import BlogStore, NoSuchPost


@pytest.fixture
def store(tmp_path, blog):
    return BlogStore(tmp_path / "site", tmp_path / "store", "http://blog.example/")


def test_two_addresses_asking_for_one_blog_name_get_two_blogs(store):
    first = store.publish("a.b@c.d", "post", "A", "one")
    second = store.publish("a@b.c.d", "post", "B", "two")
    assert (first.blog, second.blog) == ("a.b.c.d", "a.b.c.d.2")
    assert store.get("a.b.c.d", "post").markdown == "one"
    assert store.url_of(second) == "http://blog.example/posts/a.b.c.d.2/post.html"


def test_a_post_is_deleted_by_its_author_only(store):
    store.publish("a@x.org", "post", "A", "one")
    with pytest.raises(NoSuchPost):
        store.delete("b@x.org", "post")
    assert store.delete("A@X.org", "post").title == "A"
    with pytest.raises(NoSuchPost):
        store.get("a.x.org", "post")


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "", ".", "x\x00y", "UPPER/..", "a..b", "-x"])
def test_names_that_could_leave_the_folder_are_refused(store, bad):
    with pytest.raises(names.BadName):
        store.get(bad, "post")
    with pytest.raises(names.BadName):
        store.get("a.x.org", bad)


def test_inside_refuses_paths_that_resolve_elsewhere(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    assert names.inside(tmp_path / "root", "ok", "page.html") == (tmp_path / "root" / "ok" / "page.html").resolve()
    for parts in (("..",), ("a", ".."), ("a/../..",), ("link", "secret")):
        with pytest.raises(names.BadName):
            names.inside(tmp_path / "root", *parts)


@pytest.mark.parametrize("address, slug", [
    ("Mary-Jane@Example.org", "mary.jane.example.org"),
    ("../../etc/passwd@x.org", "etc.passwd.x.org"),
    ('"a b"@[127.0.0.1]', "a.b.127.0.0.1"),
    ("@", "unnamed.blog"),
    ("root@localhost", "root.localhost"),
    ("x@", "x.blog"),
])
def test_blog_slugs_are_valid_blog_names(address, slug):
    assert names.blog_slug(address) == slug
    assert names.blog_name(slug) == slug


def test_comment_ids_find_their_post_until_it_is_deleted(store):
    long_blog = "firstname.lastname@department.university.example.edu"
    post = store.publish(long_blog, "a" * 64, "Long", "text")
    assert len(f"comment-{post.comment_id}") <= 64  # RFC 5321: a local part has at most 64 characters
    assert store.by_comment_id(post.comment_id).name == "a" * 64
    store.delete(long_blog, "a" * 64)
    with pytest.raises(NoSuchPost):
        store.by_comment_id(post.comment_id)


def test_comments_and_updates_from_many_threads_lose_nothing(store):
    store.publish("a@x.org", "post", "A", "v0")

    def comment(n):
        store.comment("a.x.org", "post", f"reader {n}", f"comment {n}")

    def update(n):
        store.publish("a@x.org", "post", "A", f"v{n}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        for n in range(40):
            pool.submit(comment, n)
            pool.submit(update, n)
    post = store.get("a.x.org", "post")
    assert sorted(c.text for c in post.comments) == sorted(f"comment {n}" for n in range(40))
    assert post.markdown.startswith("v")
