"""Conversations with app.handlers.sample, in-process: no servers, no Redis.

RouterConversation routes a message exactly as a router worker would, and
the CapturingRelay (config/testing.py) keeps the replies for delivered().
"""

from lamson.testing import RouterConversation, assert_in_state, delivered, make_message

SENDER = "somedude@localhost"
ADDRESS = "hello@test.com"


def test_first_message_is_welcomed(lamson_router):
    client = RouterConversation(SENDER, "Hi")
    client.begin()
    reply = client.say(ADDRESS, "Hello there.", expect=SENDER)
    assert "Welcome" in reply.body()
    assert reply["from"] == ADDRESS
    assert_in_state("app.handlers.sample", ADDRESS, SENDER, "GREETED")


def test_second_message_gets_the_short_answer(lamson_router):
    client = RouterConversation(SENDER, "Again")
    client.begin()
    client.say(ADDRESS, "One.", expect=SENDER)
    reply = client.say(ADDRESS, "Two.", expect=SENDER)
    assert "Hello again" in reply.body()
    assert_in_state("app.handlers.sample", ADDRESS, SENDER, "GREETED")


def test_other_hosts_are_not_routed(lamson_router):
    client = RouterConversation(SENDER, "Lost")
    client.begin()
    client.say("hello@elsewhere.org", "Anyone?")
    assert not delivered(SENDER)


def test_auto_replies_get_no_answer(lamson_router):
    lamson_router.deliver(make_message(SENDER, ADDRESS, "Out of office", "Away.", Auto_Submitted="auto-replied"))
    assert not delivered(SENDER)
