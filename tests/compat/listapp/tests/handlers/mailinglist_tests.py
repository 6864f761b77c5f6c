import os
import re

from app.model import archive, members
from lamson import view
from lamson.mail import MailRequest
from lamson.routing import Router
from lamson.testing import *

host = "example.com"
list_addr = "python@example.com"
sender = "reader@localhost"
client = RouterConversation(sender, "mailinglist_tests")
confirm_format = "python-confirm-[a-z0-9]+@example.com"
noreply_format = "python-noreply@example.com"


def setup():
    members.clear()
    archive.clear("python")


def subscribe(conversation=client):
    """Ask to join, answer the confirmation: the sender is a member afterwards."""
    confirmation = conversation.say("python-subscribe@example.com", "Let me in.", confirm_format)
    confirm_addr = re.search(confirm_format, confirmation['reply-to']).group(0)
    conversation.say(confirm_addr, "Yes, it is me.", "Welcome to python")
    return confirm_addr


def test_subscribe_asks_for_a_confirmation():
    setup()
    client.begin()
    msg = client.say("python-subscribe@example.com", "Let me in.", confirm_format)
    assert msg['to'] == sender
    assert msg['subject'] == "Confirmation required"
    assert "join the python list at example.com" in msg.body()
    assert members.find("python") == []
    assert_in_state('app.handlers.mailinglist', list_addr, sender, 'CONFIRMING_SUBSCRIBE')


def test_confirming_makes_a_member():
    setup()
    client.begin()
    subscribe()
    assert members.find("python") == [sender]
    assert_in_state('app.handlers.mailinglist', list_addr, sender, 'POSTING')
    welcome = delivered("Welcome to python")
    assert welcome['from'] == list_addr
    assert "python-unsubscribe@example.com" in welcome.body()


def test_a_wrong_confirmation_changes_nothing():
    setup()
    client.begin()
    client.say("python-subscribe@example.com", "Let me in.", confirm_format)
    client.say("python-confirm-0123456789abcdef@example.com", "Guessing.")
    assert not delivered("Welcome to python")
    assert members.find("python") == []
    assert_in_state('app.handlers.mailinglist', list_addr, sender, 'CONFIRMING_SUBSCRIBE')


def test_members_get_posts_and_the_archive_keeps_them():
    setup()
    client.begin()
    subscribe()
    other = RouterConversation("other@localhost", "mailinglist_tests")
    subscribe(other)
    clear_queue()
    client.say(list_addr, "Hello everybody on the list.", Subject="First post")
    assert queue().count() == 2  # one copy for each member
    post = delivered("Hello everybody")
    assert post['subject'] == "First post"
    assert post['from'] == sender
    assert post['reply-to'] == list_addr
    assert post['list-id'] == "<python.example.com>"
    assert post.body() == "Hello everybody on the list."

    (stored,) = archive.posts("python")
    assert stored['headers']['Subject'] == "First post"
    assert stored['headers']['From'] == sender
    assert stored['headers']['List-Id'] == "<python.example.com>"
    assert stored['body'] == "Hello everybody on the list."
    assert stored['parts'] == []
    assert stored['content_encoding']['Content-Type'][0] == "text/plain"


def test_a_multipart_post_is_archived_part_by_part():
    setup()
    client.begin()
    subscribe()
    clear_queue()
    data = """From: reader@localhost
To: python@example.com
Subject: Two parts
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="XX"

--XX
Content-Type: text/plain; charset=us-ascii

Plain words.
--XX
Content-Type: text/html; charset=us-ascii

<p>Plain words.</p>
--XX--
"""
    Router.deliver(MailRequest("fakepeer", sender, list_addr, data))
    post = delivered("Two parts")
    assert post['from'] == sender

    (stored,) = archive.posts("python")
    types = [part['content_encoding']['Content-Type'][0] for part in stored['parts']]
    assert types == ["text/plain", "text/html"]
    assert "Plain words." in stored['parts'][0]['body']
    assert "<p>Plain words.</p>" in stored['parts'][1]['body']


def test_non_members_cannot_post():
    setup()
    client.begin()
    msg = client.say(list_addr, "Can I post?", noreply_format)
    assert msg['subject'] == "You are not a member of python"
    assert "only members can post" in msg.body()
    assert archive.posts("python") == []
    assert_in_state('app.handlers.mailinglist', list_addr, sender, 'START')


def test_unsubscribe():
    setup()
    client.begin()
    subscribe()
    msg = client.say("python-unsubscribe@example.com", "Let me out.", "Goodbye from python")
    assert msg['from'] == noreply_format
    assert members.find("python") == []
    assert_in_state('app.handlers.mailinglist', list_addr, sender, 'START')


def test_templates_render():
    for name in ["confirm.txt", "welcome.txt", "goodbye.txt", "notmember.txt"]:
        text = view.render({'list_name': 'python', 'host': host, 'confirm_address': 'python-confirm-1'}, name)
        assert "python" in text
        assert os.path.exists(os.path.join("app", "templates", name))
