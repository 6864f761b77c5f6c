from app.model import members
from lamson.mail import MailRequest
from lamson.routing import Router
from lamson.testing import *

list_addr = "python@example.com"


def bounce(name):
    """A bounce from tests/data, as the receiver gets it: empty envelope sender, to the list."""
    return MailRequest("fakepeer", None, list_addr, open("tests/data/" + name).read())


def setup():
    members.clear()
    Router.clear_states()
    clear_queue()
    members.add("python", "gone@example.net")
    members.add("python", "reader@localhost")
    members.add("jython", "gone@example.net")


def test_the_bounces_are_bounces():
    hard = bounce("bounce.msg")
    assert hard.is_bounce()
    assert hard.bounce.is_hard()
    assert hard.bounce.final_recipient == "gone@example.net"
    soft = bounce("softbounce.msg")
    assert soft.is_bounce()
    assert soft.bounce.is_soft()


def test_a_hard_bounce_removes_the_member_everywhere():
    setup()
    Router.deliver(bounce("bounce.msg"))
    assert members.find("python") == ["reader@localhost"]
    assert members.find("jython") == []
    # a bounce is not a post: nobody is told anything
    assert queue().count() == 0


def test_a_soft_bounce_keeps_the_member():
    setup()
    Router.deliver(bounce("softbounce.msg"))
    assert members.find("python") == ["gone@example.net", "reader@localhost"]
    assert members.find("jython") == ["gone@example.net"]
    assert queue().count() == 0


def test_a_bounce_leaves_the_bouncing_system_in_start():
    setup()
    msg = bounce("bounce.msg")
    Router.deliver(msg)
    assert Router.get_state('app.handlers.mailinglist', msg) == 'START'
