from lamson.testing import *
from lamson import view
import os

client = RouterConversation("somedude@localhost", "requests_tests")
noreply_format = "noreply@test.com"


def test_new_user_gets_a_welcome():
    """
    A sender we never saw gets the welcome and moves on to NEW_USER.
    """
    client.begin()
    client.say("hello@test.com", "Hi there.", "Welcome to test.com")
    assert_in_state('app.handlers.sample', "hello@test.com", "somedude@localhost", 'NEW_USER')


def test_second_message_is_answered_by_new_user():
    client.begin()
    client.say("hello@test.com", "First one.", noreply_format)
    msg = client.say("hello@test.com", "Second one.", "Hello again")
    assert "we remember you" in msg.body()
    assert_in_state('app.handlers.sample', "hello@test.com", "somedude@localhost", 'NEW_USER')


def test_forwards_every_message():
    client.begin()
    client.say("hello@test.com", "Forward this one.")
    assert delivered("Forward this one.")


def test_drops_open_relay_messages():
    """
    But, make sure that mail NOT for test.com gets dropped silently.
    """
    client.begin()
    client.say("tester@badplace.notinterwebs", "Relay should not happen")
    assert queue().count() == 0, "You are configured currently to accept everything.  You should change config/settings.py router_defaults so host is your actual host name that will receive mail."


def test_deferred_messages_go_to_the_queue():
    client.begin()
    clear_queue("run/deferred")
    client.say("work-deferred@test.com", "Do this later.")
    assert delivered("Do this later.", to_queue=queue("run/deferred"))
    assert queue("run/deferred").count() == 1


def test_spelling():
    for name in ["welcome.txt", "again.txt", "deferred.txt"]:
        template = os.path.join("app", "templates", name)
        contents = open(template).read()
        assert spelling(template, contents)
