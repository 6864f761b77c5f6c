from lamson.testing import *
from config import settings

relay = relay(port=settings.receiver_config['port'])
client = TestConversation(relay, "smtpdude@localhost", "smtp_tests")


def test_welcome_then_hello_again_through_the_server():
    """
    Needs lamson start: the message goes to the receiver, the reply comes
    back through the relay into run/queue.
    """
    client.begin()
    client.say("hello@test.com", "Over SMTP.", "Welcome to test.com")
    client.say("hello@test.com", "Over SMTP again.", "Hello again from test.com")
