"""The blogs: private records (JSON, under ``store``) and the public pages made from them (under ``site``).

``store`` holds what only the application reads: ``blogs.json`` (which
address owns which blog) and one ``BLOG/POST.json`` per post (the author's
address, the Markdown source, the comments). ``site`` is what a web server
may publish: ``posts/BLOG/POST.html``, ``posts/BLOG/index.html`` and the
front page ``index.html`` (rebuilt by the queue worker, app/handlers/index.py).
Addresses never appear on the public pages.

Two router workers may change the same blog at once (the author updates a
post while someone comments on it: two senders, two conversation locks), so
every read-modify-write holds an exclusive ``flock`` on a lock file, and every
file is replaced atomically (written aside, fsynced, renamed), so a reader
never sees half a page.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.model import names
from app.model.markup import render_markdown
from lamson import view

#: The longest post body and comment kept (characters); the rest is cut off.
MAX_POST = 200_000
MAX_COMMENT = 10_000


class NoSuchPost(LookupError):
    """The post does not exist (in this sender's blog, or at all)."""


@dataclass
class Comment:
    """One comment as shown on a post page: a display name, never the address."""

    name: str
    text: str
    date: str


@dataclass
class Post:
    """One post's record."""

    blog: str
    name: str
    author: str
    title: str
    markdown: str
    created: str
    updated: str
    comments: list[Comment] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The page's path under the site folder (and under the site's URL)."""
        return f"posts/{self.blog}/{self.name}.html"

    @property
    def comment_id(self) -> str:
        """What the post's comment address ``comment-ID@HOST`` names it by (see :func:`comment_id`)."""
        return comment_id(self.blog, self.name)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Post:
        comments = [Comment(**c) for c in data.pop("comments", [])]
        return cls(comments=comments, **data)


def comment_id(blog: str, post: str) -> str:
    """A short, stable id of a post: 12 hex digits of SHA-256 of ``BLOG/POST``.

    ``comment-BLOG-POSTNAME`` would be friendlier, but blog and post names of
    up to 64 characters each do not fit SMTP's 64-character local part
    (RFC 5321 section 4.5.3.1.1): receivers refuse such addresses.
    """
    return hashlib.sha256(f"{blog}/{post}".encode()).hexdigest()[:12]


def now() -> str:
    """The time of a change, as shown on the pages (UTC, to the minute)."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # pages are for the web server to read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class BlogStore:
    """Blogs, posts and comments in ``store`` (private) and ``site`` (public pages)."""

    def __init__(self, site: str | os.PathLike[str], store: str | os.PathLike[str], url: str = "/",
                 host: str = "osb.test") -> None:
        self.site = Path(site)
        self.store = Path(store)
        self.url = url if url.endswith("/") else url + "/"
        self.host = host  # the mail domain, for the addresses shown on the pages

    # -- locking and the owner registry ------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock: one change at a time, across processes."""
        self.store.mkdir(parents=True, exist_ok=True)
        with open(self.store / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _owners(self) -> dict[str, str]:
        path = self.store / "blogs.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def blog_of(self, address: str) -> str | None:
        """The blog ``address`` owns, or None if it never published."""
        return self._owners().get(address.lower())

    def _claim_blog(self, address: str) -> str:
        """The blog of ``address``, created on its first post (call with the lock held)."""
        owners = self._owners()
        address = address.lower()
        if address in owners:
            return owners[address]
        taken = set(owners.values())
        slug = names.blog_slug(address)
        name, number = slug, 2
        while name in taken:
            name, number = f"{slug}.{number}", number + 1
        owners[address] = names.blog_name(name)
        write_atomically(self.store / "blogs.json", json.dumps(owners, indent=1, sort_keys=True))
        return owners[address]

    def _comment_ids(self) -> dict[str, list[str]]:
        path = self.store / "comment-ids.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def _index_comment_id(self, post: Post, present: bool) -> None:
        """Add or remove a post's entry in ``comment-ids.json`` (call with the lock held)."""
        ids = self._comment_ids()
        if present == (post.comment_id in ids):
            return
        if present:
            ids[post.comment_id] = [post.blog, post.name]
        else:
            del ids[post.comment_id]
        write_atomically(self.store / "comment-ids.json", json.dumps(ids, indent=1, sort_keys=True))

    def by_comment_id(self, post_id: str) -> Post:
        """The post whose comment address names ``post_id``, or :class:`NoSuchPost`."""
        found = self._comment_ids().get(post_id.lower())
        if not found:
            raise NoSuchPost(post_id)
        return self.get(*found)

    # -- posts ---------------------------------------------------------------

    def _record(self, blog: str, post: str) -> Path:
        return names.inside(self.store, names.blog_name(blog), names.post_name(post) + ".json")

    def get(self, blog: str, post: str) -> Post:
        """The post ``post`` of ``blog``, or :class:`NoSuchPost`."""
        path = self._record(blog, post)
        if not path.exists():
            raise NoSuchPost(f"{blog}/{post}")
        return Post.from_json(json.loads(path.read_text(encoding="utf-8")))

    def _save(self, post: Post) -> None:
        write_atomically(self._record(post.blog, post.name), json.dumps(asdict(post), indent=1))
        self.render_post(post)
        self.render_blog(post.blog)

    def publish(self, author: str, post: str, title: str, text: str) -> Post:
        """Create or update ``author``'s post ``post`` (its comments are kept); its page is rendered."""
        post = names.post_name(post)
        with self.locked():
            blog = self._claim_blog(author)
            try:
                record = self.get(blog, post)
                record.title, record.markdown, record.updated = title, text[:MAX_POST], now()
            except NoSuchPost:
                stamp = now()
                record = Post(blog, post, author.lower(), title, text[:MAX_POST], stamp, stamp)
            self._save(record)
            self._index_comment_id(record, True)
            return record

    def delete(self, author: str, post: str) -> Post:
        """Delete ``author``'s post: its record and its page. :class:`NoSuchPost` if they have none so named."""
        post = names.post_name(post)
        with self.locked():
            blog = self.blog_of(author)
            if blog is None:
                raise NoSuchPost(post)
            record = self.get(blog, post)
            if record.author != author.lower():  # a blog has one owner; checked again all the same
                raise NoSuchPost(post)
            self._record(blog, post).unlink()
            self._index_comment_id(record, False)
            page = names.inside(self.site, "posts", blog, post + ".html")
            page.unlink(missing_ok=True)
            self.render_blog(blog)
            return record

    def comment(self, blog: str, post: str, name: str, text: str) -> Post:
        """Add a comment to a post and render its page again."""
        with self.locked():
            record = self.get(blog, post)
            record.comments.append(Comment(name=name, text=text[:MAX_COMMENT], date=now()))
            self._save(record)
            return record

    def posts(self, blog: str) -> list[Post]:
        """Every post of ``blog``, newest change first."""
        folder = names.inside(self.store, names.blog_name(blog))
        found = [Post.from_json(json.loads(p.read_text(encoding="utf-8"))) for p in folder.glob("*.json")]
        return sorted(found, key=lambda p: (p.updated, p.name), reverse=True)

    def blogs(self) -> list[str]:
        """Every blog that has at least one post, by name."""
        return sorted({name for name in self._owners().values() if self.posts(name)})

    # -- pages -------------------------------------------------------------------

    def url_of(self, post: Post) -> str:
        """The public URL of a post's page."""
        return self.url + post.path

    def render_post(self, post: Post) -> None:
        page = view.render({"post": post, "body": render_markdown(post.markdown), "url": self.url,
                            "host": self.host},
                           "post.html")
        write_atomically(names.inside(self.site, "posts", post.blog, post.name + ".html"), page)

    def render_blog(self, blog: str) -> None:
        page = view.render({"blog": blog, "posts": self.posts(blog), "url": self.url, "host": self.host}, "blog.html")
        write_atomically(names.inside(self.site, "posts", names.blog_name(blog), "index.html"), page)

    def render_index(self, latest: int = 20) -> Path:
        """Write the front page: every blog with its latest posts, and the latest posts of all."""
        blogs = {blog: self.posts(blog) for blog in self.blogs()}
        everything = sorted((p for posts in blogs.values() for p in posts),
                            key=lambda p: (p.updated, p.blog, p.name), reverse=True)
        page = view.render({"blogs": blogs, "latest": everything[:latest], "url": self.url,
                            "host": self.host}, "index.html")
        path = names.inside(self.site, "index.html")
        write_atomically(path, page)
        return path
