"""Small helpers the handler tests share."""

import re

from lamson.testing import RouterConversation

HOST = "osb.test"


def confirm_address(reply):
    """The address a confirmation request asks to be answered (its From), checked against its Reply-To."""
    address = reply["from"]
    assert reply["reply-to"] == address
    assert re.fullmatch(r"(post|comment)-confirm-[0-9a-f]{32}@osb\.test", address), address
    return address


def confirmed_author(sender, post_name="my-first-post", body="# Hello\n\nMy *first* post.", subject="Hello"):
    """An unverified sender who posted ``post_name`` and confirmed: their conversation, and the published reply."""
    client = RouterConversation(sender, subject)
    request = client.say(f"{post_name}@{HOST}", body, expect="Confirmation required")
    published = client.say(confirm_address(request), "Yes, it is me.", expect="is online")
    return client, published


def verified_author(sender, post_name="my-first-post", body="# Hello\n\nMy *first* post.", subject="Hello"):
    """A sender who authenticated (message.sender is theirs) and posted ``post_name``: published at once."""
    client = RouterConversation(sender, subject, authenticated=True)
    published = client.say(f"{post_name}@{HOST}", body, expect="is online")
    return client, published
