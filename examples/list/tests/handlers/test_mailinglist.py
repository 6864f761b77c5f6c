"""The list handlers in-process: no servers, no Redis (config/testing.py).

Each test starts with nobody subscribed (the ``lists`` fixture). What the
handlers send is captured with its envelope: ``m.From`` is the envelope
sender (the VERP return path of a copy), ``m.To`` the recipient.

A message made here has no verified sender (no submission login, no DMARC
pass: like a forged one); ``post(..., verified=True)`` sends as a member who
authenticated on the submission listener (``message.sender`` is then theirs).
"""

from pathlib import Path

import pytest
from app.model import verp
from config import settings

from lamson.envelope import Envelope
from lamson.mail import MailRequest
from lamson.queue import Queue
from lamson.router import Router
from lamson.spam import Filter
from lamson.testing import make_message, queue
from tests.handlers.conftest import sent_to

HOST = "test.com"
LIST = "lamson@test.com"
ALICE = "alice@example.org"
BOB = "bob+lists@example.net"


def confirm_address(reply: MailRequest) -> str:
    address = str(reply["reply-to"])
    assert address.startswith(("lamson-confirm-", "lamson-unsubscribe-confirm-", "lamson-post-confirm-")), address
    return address


def subscribe(address: str, list_name: str = "lamson") -> None:
    """The whole round trip: ask, get the request, answer it."""
    before = len(sent_to(address))
    Router.deliver(make_message(address, f"{list_name}-subscribe@{HOST}", "subscribe", "please"))
    request = sent_to(address)[before]
    Router.deliver(make_message(address, confirm_address(request), "Re: confirm", "yes"))
    assert settings.members.is_member(list_name, address)


def as_user(message: MailRequest, user: str) -> MailRequest:
    """``message`` as if it came in on the submission listener, its sender authenticated as ``user``."""
    message.envelope = Envelope(mail_from=str(message.From or ""), rcpt_tos=(str(message.To),), extra={"auth": user})
    return message


def post(sender: str, subject: str = "Hello list", body: str = "A post.", to: str = LIST, *,
         verified: bool = True, envelope: str | None = None, **headers: str) -> None:
    """Post as ``sender`` (the From line; the envelope sender too unless ``envelope``), verified or not."""
    message = make_message(sender, to, subject, body, **headers)
    if envelope is not None:
        message = MailRequest("127.0.0.1", envelope, to, message.Data)
    Router.deliver(as_user(message, sender) if verified else message)


def return_path(member: str, list_name: str = "lamson") -> str:
    return verp.return_path(list_name, member, HOST, settings.verp_key)


def dsn(to: str, recipient: str, status: str) -> MailRequest:
    """An RFC 3464 bounce from <> for ``recipient``, sent to ``to`` (a VERP return path)."""
    action = "failed" if status.startswith("5") else "delayed"
    data = (
        "From: MAILER-DAEMON@mx.example.org\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n\r\n"
        "--b1--\r\n"
    )
    return MailRequest("127.0.0.1", "", to, data.encode())


# -- subscribing ---------------------------------------------------------------


def test_subscribe_asks_for_a_confirmation_and_does_not_subscribe_yet(lists):
    Router.deliver(make_message(ALICE, "lamson-subscribe@test.com", "subscribe", ""))
    [request] = sent_to(ALICE)
    assert request["from"] == request["reply-to"] == confirm_address(request)
    assert "Confirm your subscription" in request["subject"]
    assert confirm_address(request) in request.body()
    assert request["List-Id"] == "Talk about the Lamson mail framework <lamson.test.com>"
    assert not lists.members.is_member("lamson", ALICE)


def test_answering_the_confirmation_subscribes_and_welcomes(lists):
    subscribe(ALICE)
    welcome = sent_to(ALICE)[-1]
    assert "Welcome to lamson@test.com" in welcome["subject"]
    assert lists.members.members("lamson") == [ALICE]
    assert lists.members.members("announce") == []


def test_a_wrong_or_used_secret_subscribes_nobody(lists):
    Router.deliver(make_message(ALICE, "lamson-subscribe@test.com", "subscribe", ""))
    address = confirm_address(sent_to(ALICE)[0])
    Router.deliver(make_message(ALICE, "lamson-confirm-" + "0" * 32 + "@test.com", "Re", ""))
    assert not lists.members.is_member("lamson", ALICE)
    Router.deliver(make_message(BOB, address, "Re", ""))  # another address cannot use Alice's secret
    assert not lists.members.is_member("lamson", BOB)
    Router.deliver(make_message(ALICE, address, "Re", ""))
    assert lists.members.is_member("lamson", ALICE)
    lists.members.remove("lamson", ALICE)
    Router.deliver(make_message(ALICE, address, "Re", ""))  # a secret works once
    assert not lists.members.is_member("lamson", ALICE)


def test_an_auto_reply_to_the_confirmation_request_subscribes_nobody(lists):
    Router.deliver(make_message(ALICE, "lamson-subscribe@test.com", "subscribe", ""))
    address = confirm_address(sent_to(ALICE)[0])
    Router.deliver(make_message(ALICE, address, "Out of office", "Away.", Auto_Submitted="auto-replied"))
    assert not lists.members.is_member("lamson", ALICE)
    assert len(sent_to(ALICE)) == 1


def test_subscribing_twice_says_so(lists):
    subscribe(ALICE)
    Router.deliver(make_message(ALICE, "lamson-subscribe@test.com", "again", ""))
    assert "already on" in sent_to(ALICE)[-1]["subject"]


def test_unknown_lists_are_not_routed(lists):
    Router.deliver(make_message(ALICE, "nosuchlist-subscribe@test.com", "subscribe", ""))
    Router.deliver(make_message(ALICE, "nosuchlist@test.com", "post", ""))
    assert sent_to(ALICE) == []


# -- posting --------------------------------------------------------------------


def test_a_members_post_reaches_every_member_with_the_list_headers_and_a_verp_sender(lists):
    subscribe(ALICE)
    subscribe(BOB)
    before = len(queue())
    post(ALICE, "Hello list", "First post.")
    copies = queue().messages()[before:]
    assert sorted(m.To for m in copies) == sorted([ALICE, BOB])
    for copy in copies:
        assert copy.From == return_path(copy.To)
        assert copy.From.startswith("lamson-bounce+")
        assert copy["subject"] == "Hello list" and "First post." in copy.body()
        assert copy["from"] == ALICE
        assert copy["List-Id"] == "Talk about the Lamson mail framework <lamson.test.com>"
        assert copy["List-Post"] == "<mailto:lamson@test.com>"
        assert copy["List-Help"] == "<mailto:lamson-help@test.com>"
        assert copy["List-Unsubscribe"] == "<mailto:lamson-unsubscribe@test.com>"
        assert copy["List-Archive"] == "<https://test.com/archive/lamson/>"
        assert copy["Precedence"] == "list"
        assert copy["X-Loop"] == "lamson@test.com"
        # No web endpoint, so no RFC 8058 one-click header (it needs an https List-Unsubscribe).
        assert copy["List-Unsubscribe-Post"] is None
    assert verp.verified_member(copies[0].From.split("+", 1)[1].split("@")[0], "lamson", settings.verp_key) \
        == copies[0].To


def test_a_post_is_archived_in_the_lists_maildir(lists):
    subscribe(ALICE)
    post(ALICE, "For the archive", "Keep me.")
    archive = Queue(Path(lists.archive_dir) / "lamson")
    kept = [archive.get(key) for key in archive.keys()]
    assert any(m["subject"] == "For the archive" and m["List-Id"] for m in kept)


def test_a_non_member_is_refused_politely_once(lists):
    subscribe(ALICE)
    before = len(queue())
    post(BOB, "Can I post?")
    [refusal] = queue().messages()[before:]
    assert refusal.To == BOB and "Only members post" in refusal["subject"]
    assert "Can I post?" in refusal.body()
    post(BOB, "And now?")
    assert len(queue()) == before + 1  # told once, not again
    assert not [m for m in queue().messages()[before:] if m.To == ALICE]


@pytest.mark.parametrize("headers", [
    {"Auto_Submitted": "auto-replied"},
    {"Precedence": "bulk"},
    {"Precedence": "junk"},
    {"Precedence": "list"},
    {"X_Autoreply": "yes"},
    {"List_Id": "Another list <other.example.org>"},
])
def test_automatic_mail_never_reaches_the_list_and_gets_no_answer(lists, headers):
    subscribe(ALICE)
    before = len(queue())
    post(ALICE, "Out of office", "Away.", **headers)
    post(BOB, "Out of office", "Away.", **headers)  # and no refusal for a non-member's either
    assert len(queue()) == before


@pytest.mark.parametrize("headers", [
    {"List_Id": "Talk about the Lamson mail framework <lamson.test.com>"},
    {"X_Loop": "lamson@test.com"},
])
def test_the_lists_own_mail_coming_back_is_dropped(lists, headers):
    subscribe(ALICE)
    before = len(queue())
    post(ALICE, "Re: Hello list", "Looped.", **headers)
    assert len(queue()) == before


def test_a_bounce_sent_to_the_list_address_is_not_posted(lists):
    subscribe(ALICE)
    before = len(queue())
    Router.deliver(dsn(LIST, ALICE, "5.1.1"))
    assert len(queue()) == before


def test_spam_lands_in_run_spam_and_is_not_posted(lists):
    subscribe(ALICE)
    spam = Filter(lists.spam_db)
    spam.clear()
    pills = "Buy cheap pills now, viagra casino lottery winner, click here to claim your prize money."
    try:
        for n in range(5):
            spam.train_spam(make_message(f"spammer{n}@junk.example", LIST, "Cheap pills casino prize", pills))
            spam.train_ham(make_message(ALICE, LIST, "Routing question", f"How do I route mail in Lamson, take {n}?"))
        before = len(queue())
        post(ALICE, "Cheap pills casino prize", pills)
        assert len(queue()) == before
        held = Queue(lists.spam_dir)
        assert any(m["subject"] == "Cheap pills casino prize" for m in (held.get(k) for k in held.keys()))
        post(ALICE, "Routing question", "How do I route mail in Lamson, take 9?")
        assert len(queue()) == before + 1
    finally:
        spam.clear()


# -- unsubscribing -----------------------------------------------------------------


def test_unsubscribe_is_confirmed_then_done(lists):
    subscribe(ALICE)
    Router.deliver(make_message(ALICE, "lamson-unsubscribe@test.com", "unsubscribe", ""))
    request = sent_to(ALICE)[-1]
    address = confirm_address(request)
    assert address.startswith("lamson-unsubscribe-confirm-")
    assert lists.members.is_member("lamson", ALICE)  # not before the confirmation
    Router.deliver(make_message(ALICE, address, "Re: confirm", "yes"))
    assert not lists.members.is_member("lamson", ALICE)
    assert "You have left" in sent_to(ALICE)[-1]["subject"]


def test_a_forged_unsubscribe_goes_to_the_member_not_the_forger(lists):
    subscribe(ALICE)
    # The forger writes in Alice's name: the confirmation request goes to Alice, whose list it is.
    Router.deliver(make_message(ALICE, "lamson-unsubscribe@test.com", "unsubscribe", ""))
    assert sent_to(ALICE)[-1]["reply-to"].startswith("lamson-unsubscribe-confirm-")
    Router.deliver(make_message(BOB, confirm_address(sent_to(ALICE)[-1]), "Re", ""))
    assert lists.members.is_member("lamson", ALICE)


def test_unsubscribing_a_non_member_says_so(lists):
    Router.deliver(make_message(BOB, "lamson-unsubscribe@test.com", "unsubscribe", ""))
    assert "not on" in sent_to(BOB)[-1]["subject"]


def test_help(lists):
    Router.deliver(make_message(BOB, "lamson-help@test.com", "help", ""))
    reply = sent_to(BOB)[-1]
    assert "lamson-subscribe@test.com" in reply.body() and reply["List-Help"]


# -- bounces -----------------------------------------------------------------------


def test_soft_bounces_are_counted_only(lists):
    subscribe(ALICE)
    for _ in range(5):
        Router.deliver(dsn(return_path(ALICE), ALICE, "4.2.2"))
    assert lists.members.bounces("lamson", ALICE) == {"soft": 5, "hard": 0}
    assert lists.members.is_member("lamson", ALICE)


def test_hard_bounces_disable_a_member_who_is_told_how_to_come_back(lists):
    subscribe(ALICE)
    subscribe(BOB)
    bob_path = return_path(BOB)
    limit = lists.bounce_disable_after
    for _ in range(limit - 1):
        Router.deliver(dsn(bob_path, BOB, "5.1.1"))
    assert lists.members.is_member("lamson", BOB)
    before = len(queue())
    Router.deliver(dsn(bob_path, BOB, "5.1.1"))
    assert not lists.members.is_member("lamson", BOB) and lists.members.is_disabled("lamson", BOB)
    [notice] = queue().messages()[before:]
    assert notice.To == BOB and notice.From == ""  # from <>: the notice cannot bounce back and count
    assert "lamson-subscribe@test.com" in notice.body()
    # Disabled: no more copies; Alice is unaffected.
    before = len(queue())
    post(ALICE, "After", "Bob is off.")
    assert [m.To for m in queue().messages()[before:]] == [ALICE]
    # Subscribing again brings Bob back with clean counts.
    subscribe(BOB)
    assert lists.members.bounces("lamson", BOB) == {"soft": 0, "hard": 0}


def test_bounces_for_strangers_and_non_bounces_change_nothing(lists):
    subscribe(ALICE)
    Router.deliver(dsn(return_path(BOB), BOB, "5.1.1"))
    assert lists.members.bounces("lamson", BOB) == {"soft": 0, "hard": 0}
    before = len(queue())
    Router.deliver(make_message("vacation@example.org", return_path(ALICE), "Away", "Back soon."))
    assert lists.members.bounces("lamson", ALICE) == {"soft": 0, "hard": 0}
    assert len(queue()) == before


# -- who may post (issue 21, finding 3) -----------------------------------------------------


def held_for(member: str) -> MailRequest:
    [request] = [m for m in sent_to(member) if "Confirm your post" in str(m["subject"])]
    return request


@pytest.mark.parametrize("envelope", ["mallory@evil.test", ALICE], ids=["forged-from", "forged-both"])
def test_an_unverified_post_in_a_members_name_is_held_and_asked_of_the_member(lists, envelope):
    subscribe(ALICE)
    subscribe(BOB)
    before = len(queue())
    post(f"Alice <{ALICE}>", "Forged", "Not Alice.", verified=False, envelope=envelope)
    new = queue().messages()[before:]
    assert [m.To for m in new] == [ALICE]  # only the member named is asked; nobody else gets anything
    request = held_for(ALICE)
    address = confirm_address(request)
    assert address.startswith("lamson-post-confirm-") and "Forged" in request.body()
    assert not [m for m in new if m.To == "mallory@evil.test"]


def test_a_post_from_the_null_sender_in_a_members_name_gets_nothing_sent(lists):
    subscribe(ALICE)
    before = len(queue())
    post(f"Alice <{ALICE}>", "Forged", "From <>.", verified=False, envelope="")
    assert len(queue()) == before


def test_the_member_confirming_sends_the_held_post_to_everyone(lists):
    subscribe(ALICE)
    subscribe(BOB)
    post(ALICE, "Unverified but mine", "Really me.", verified=False)
    address = confirm_address(held_for(ALICE))
    Router.deliver(make_message("mallory@evil.test", address, "Re", "yes"))  # the secret is Alice's alone
    assert not [m for m in sent_to(BOB) if "Really me." in m.body()]
    before = len(queue())
    Router.deliver(make_message(ALICE, address, "Re: Confirm your post", "yes"))
    copies = queue().messages()[before:]
    assert sorted(m.To for m in copies) == sorted([ALICE, BOB])
    assert all("Really me." in m.body() and m["subject"] == "Unverified but mine" for m in copies)
    before = len(queue())
    Router.deliver(make_message(ALICE, address, "Re: Confirm your post", "again"))  # works once
    assert len(queue()) == before


@pytest.mark.parametrize("from_line", [
    f'"{ALICE}" <mallory@evil.test>',  # the display name says Alice, the address is Mallory's
    f"Alice <{ALICE}>, Mallory <mallory@evil.test>",  # two authors: nobody verified, nobody claimed
    "mallory@evil.test",
])
def test_a_non_member_author_is_refused_whatever_the_display_name_or_envelope(lists, from_line):
    subscribe(ALICE)
    subscribe(BOB)
    before = len(queue())
    post(from_line, "Tricked", "Hello.", verified=False, envelope=ALICE)
    new = queue().messages()[before:]
    assert not [m for m in new if "Hello." in m.body() and "Tricked" == m["subject"]]
    assert not [m for m in new if "Confirm your post" in str(m["subject"])]
    assert [m.To for m in new] == [ALICE] and "Only members post" in new[0]["subject"]


def test_a_verified_non_member_writing_a_members_from_is_refused(lists):
    subscribe(ALICE)
    before = len(queue())
    data = make_message(f"Alice <{ALICE}>", LIST, "Forged", "Hi.").Data
    Router.deliver(as_user(MailRequest("127.0.0.1", "mallory@evil.test", LIST, data), "mallory@evil.test"))
    assert [m.To for m in queue().messages()[before:]] == ["mallory@evil.test"]


# -- unsolicited mail (issue 21, finding 5) ---------------------------------------------------


def test_a_victim_gets_at_most_unsolicited_per_hour_answers_whatever_the_addresses(lists):
    victim = "victim@example.net"
    addresses = [f"{name}-{kind}@{HOST}" for name in ("lamson", "announce") for kind in ("subscribe", "help",
                                                                                          "unsubscribe")]
    addresses += [LIST, "announce@test.com"]
    for _ in range(10):
        for address in addresses:
            Router.deliver(make_message(victim, address, "hi", ""))
    assert len(sent_to(victim)) == lists.confirm.per_hour() == 5


def test_fan_out_is_not_counted_against_the_cap(lists):
    subscribe(ALICE)
    subscribe(BOB)
    for n in range(12):
        post(ALICE, f"Post {n}", f"Body {n}.")
    assert len([m for m in sent_to(BOB) if m["subject"].startswith("Post ")]) == 12


# -- forged bounces (issue 21, finding 6) -----------------------------------------------------


@pytest.mark.parametrize("path", [
    f"lamson-bounce+{verp.encode(BOB)}@{HOST}",  # untagged (the old form)
    f"lamson-bounce+{verp.encode(BOB)}=aaaaaaaaaaaa@{HOST}",  # a wrong tag
    "alice-tag",  # Alice's tag on Bob's address
    "announce-tag",  # Bob's tag on another list
], ids=["untagged", "wrong-tag", "other-member", "other-list"])
def test_forged_bounces_never_count(lists, path):
    subscribe(ALICE)
    subscribe(BOB)
    if path == "alice-tag":
        path = f"lamson-bounce+{verp.encode(BOB)}={verp.tag(settings.verp_key, 'lamson', ALICE)}@{HOST}"
    elif path == "announce-tag":
        path = f"lamson-bounce+{verp.encode(BOB)}={verp.tag(settings.verp_key, 'announce', BOB)}@{HOST}"
    for _ in range(lists.bounce_disable_after + 2):
        Router.deliver(dsn(path, BOB, "5.1.1"))
    assert lists.members.is_member("lamson", BOB)
    assert lists.members.bounces("lamson", BOB) == {"soft": 0, "hard": 0}
