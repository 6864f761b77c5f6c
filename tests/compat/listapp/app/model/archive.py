"""The list's archive: a JSON copy of every post, as the members received it.

The copy is made from the post's MailBase (MailResponse.base): its headers,
its content_encoding (Content-Type and friends with their parameters), its
body and its parts, recursively. That is what lamson.encoding gives an
application, so the archive needs no parsing of its own.
"""
import json
import os
import time
import uuid

from config import settings


def to_json(base):
    """A MailBase as plain data: headers, content_encoding, body, parts."""
    return {
        'headers': dict(base.headers),
        'content_encoding': base.content_encoding,
        'body': base.body,
        'parts': [to_json(part) for part in base.parts],
    }


def store(list_name, post):
    """Write post (a MailResponse) to archive_dir/list_name/ as JSON; return the file's path."""
    # A MailResponse fills its base when it is rendered: render it first.
    post.to_message()
    folder = os.path.join(settings.archive_dir, list_name)
    if not os.path.exists(folder):
        os.makedirs(folder)
    name = f"{time.time():017.6f}-{uuid.uuid4().hex}.json"
    path = os.path.join(folder, name)
    with open(path, "w") as out:
        json.dump(to_json(post.base), out)
    return path


def posts(list_name):
    """The archived posts of list_name, oldest first, each as the dict to_json made."""
    folder = os.path.join(settings.archive_dir, list_name)
    if not os.path.exists(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as data:
            found.append(json.load(data))
    return found


def clear(list_name):
    folder = os.path.join(settings.archive_dir, list_name)
    if os.path.exists(folder):
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
