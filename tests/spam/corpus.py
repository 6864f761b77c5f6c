"""A small, made-up training set: ham that reads like work mail, spam that reads like spam.

Generated from word lists with a fixed seed, so every run trains the same
filter; big enough (a few dozen of each) for the filter to separate them
clearly, small enough to train in well under a second.
"""

from __future__ import annotations

import random
from email.message import EmailMessage

HAM_SENDERS = ["alice@example.org", "bob@lists.example.net", "carol@university.example.edu"]
SPAM_SENDERS = ["winner@prizes.example.biz", "offers@cheap-meds.example.info", "deals4u@bulk.example.biz"]
HAM_SUBJECTS = ["meeting notes for thursday", "patch review: router locking", "lunch next week?",
                "re: build failure on the test machine", "minutes of the planning call"]
SPAM_SUBJECTS = ["YOU HAVE WON $1,000,000 CLAIM NOW!!", "cheap viagra online, no prescription",
                 "make money fast from home!!", "lowest mortgage rates guaranteed $$$", "free casino bonus"]
HAM_WORDS = ("meeting agenda thursday review patch router locking test suite release branch merge "
             "commit python redis worker queue deadline minutes planning budget team project lunch "
             "coffee schedule draft document please thanks regards attached notes question answer").split()
SPAM_WORDS = ("free money winner prize claim cash offer click guaranteed viagra pills cheap discount "
              "casino bonus mortgage rates unsubscribe limited order credit income million dollars "
              "amazing opportunity risk investment lottery urgent congratulations selected").split()


def ham_message(rng: random.Random, index: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = rng.choice(HAM_SENDERS)
    msg["To"] = "team@example.com"
    msg["Subject"] = rng.choice(HAM_SUBJECTS)
    msg["Message-Id"] = f"<ham{index}@example.org>"
    msg["Date"] = "Mon, 30 Nov 2026 09:00:00 +0000"
    words = [rng.choice(HAM_WORDS) for _ in range(60)]
    msg.set_content("Hi all,\n\n" + " ".join(words) + "\n\nRegards,\nAlice\n")
    return msg.as_bytes()


def spam_message(rng: random.Random, index: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = rng.choice(SPAM_SENDERS)
    msg["To"] = "team@example.com"
    msg["Subject"] = rng.choice(SPAM_SUBJECTS)
    words = " ".join(rng.choice(SPAM_WORDS) for _ in range(60))
    msg.set_content(words + "\nClick http://prizes.example.biz/claim?id=" + str(index) + "\n")
    msg.add_alternative(f'<html><body><font color="#ff0000"><b>{words}</b></font>'
                        f'<img src="http://prizes.example.biz/i{index}.gif">'
                        f'<a href="http://prizes.example.biz/claim">CLICK HERE</a></body></html>',
                        subtype="html")
    return msg.as_bytes()


def corpus(count: int = 30, seed: int = 7) -> tuple[list[bytes], list[bytes]]:
    """``(ham, spam)``: ``count`` messages of each."""
    rng = random.Random(seed)
    return [ham_message(rng, i) for i in range(count)], [spam_message(rng, i) for i in range(count)]


NEW_HAM = (b"From: dave@example.org\r\nTo: team@example.com\r\nSubject: patch review for the release branch\r\n"
           b"Message-Id: <new-ham@example.org>\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\n"
           b"Hi all, please review the router locking patch before the release; the test suite passes.\r\n"
           b"Thanks, Dave\r\n")
NEW_SPAM = (b"From: winner@prizes.example.biz\r\nTo: team@example.com\r\n"
            b"Subject: CONGRATULATIONS YOU ARE A WINNER!!\r\nContent-Type: text/html\r\n\r\n"
            b"<html><font color=red>Claim your free cash prize now, guaranteed! click "
            b"<a href='http://prizes.example.biz/claim'>here</a> lottery million dollars</font></html>\r\n")
