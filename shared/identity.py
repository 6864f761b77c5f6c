"""Who sent this, and how sure we are: the one answer handlers should act on.

The envelope sender (``message.From``, ``route_from``) and the From header
are written by whoever connects: anyone can claim to be anyone. A handler
that publishes, deletes, subscribes or answers on someone's behalf must act
on an identity something *verified*:

* the user who authenticated on the submission listener (SMTP AUTH over
  TLS, lamson.receiver.auth), recorded by the receiver in the envelope;
* else the From author, when sender authentication (lamson.authres) shows
  that the From domain sent it: DMARC ``pass``, or, for a domain that
  publishes no DMARC record, an SPF pass for an aligned MAIL FROM domain or
  a verified DKIM signature of an aligned domain;
* else nobody: :attr:`Identity.address` is None and :attr:`Identity.reason`
  says why (for logs and for the handler's answer).

A message with several From authors (two From headers, or two addresses in
one) never has a verified author (RFC 7489 §6.6.1). What to do without one
is the application's choice; the examples fall back to a confirmation round
trip to the claimed address (lamson.confirm), which proves only that the
person reads that mailbox (docs/security.md, "Acting on a verified sender").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: How an identity was verified.
AUTH = "auth"
DMARC = "dmarc"
DKIM = "dkim"
SPF = "spf"


@dataclass(frozen=True)
class Identity:
    """A message's verified sender, if any."""

    #: The verified sender, bare and lowercased; None when nothing verified one.
    address: str | None
    #: How: "auth" (SMTP AUTH on the submission listener), "dmarc", "dkim" or "spf" (aligned with the From
    #: domain); "" when unverified.
    method: str
    #: Why it is (or is not) verified, in a few words.
    reason: str
    #: The From author as written (bare, lowercased; "" when there is not exactly one).
    claimed: str = ""

    def __bool__(self) -> bool:
        return self.address is not None


def _aligned(domain: str, author_domain: str) -> bool:
    from lamson.authres import organizational

    return bool(domain) and organizational(domain) == organizational(author_domain)


def identify(message: Any) -> Identity:
    """The verified sender of a MailRequest (its ``envelope`` and ``auth``, set by the router worker)."""
    from lamson.mail import MAX_COMMENT_DEPTH, comment_depth

    try:
        # The stored text (MailRequest._raw): a decoded From may have lost its comments already.
        raw = getattr(message, "_raw", None)
        values = raw("from") if callable(raw) else message.get_all("from")
        deepest = max((comment_depth(str(value)) for value in values), default=0)
        authors = [address.lower() for _, address in message.addresses("from") if address]
    except Exception as exc:  # noqa: BLE001 - a From no parser can read verifies nobody
        return Identity(None, "", f"unreadable From header ({type(exc).__name__})", "")
    if deepest > MAX_COMMENT_DEPTH:  # read only with its comments removed (lamson.mail): trust no reading
        return Identity(None, "", f"unreadable From header (comments nested {deepest} deep)", "")
    claimed = authors[0] if len(authors) == 1 else ""
    envelope = getattr(message, "envelope", None)
    user = (envelope.extra.get("auth", "") if envelope is not None else "").strip().lower()
    if user:
        return Identity(user, AUTH, f"authenticated on the submission listener as {user}", claimed)
    if len(authors) > 1:
        return Identity(None, "", f"{len(authors)} From authors: none is verified (RFC 7489 6.6.1)", "")
    if not claimed or "@" not in claimed:
        return Identity(None, "", "no From author", "")
    auth = getattr(message, "auth", None)
    if auth is None:
        return Identity(None, "", "no sender authentication for this message (auth_results off, or not "
                                  "received over SMTP by this application)", claimed)
    domain = claimed.rpartition("@")[2]
    if auth.from_domain and auth.from_domain.lower() != domain:
        return Identity(None, "", f"authentication was for {auth.from_domain}, not {domain}", claimed)
    if auth.dmarc == "pass":
        return Identity(claimed, DMARC, f"dmarc=pass for {domain}", claimed)
    if auth.dmarc == "none" and not auth.dmarc_policy:  # no DMARC record: aligned SPF or DKIM will do
        signed = [d for d in auth.dkim_domains if _aligned(d, domain)]
        if signed:
            return Identity(claimed, DKIM, f"dkim=pass for {signed[0]}, aligned with {domain}", claimed)
        if auth.spf == "pass" and _aligned(auth.spf_domain, domain):
            return Identity(claimed, SPF, f"spf=pass for {auth.spf_domain}, aligned with {domain}", claimed)
    return Identity(None, "", f"not verified: dmarc={auth.dmarc} spf={auth.spf} dkim={auth.dkim} "
                              f"for {domain}", claimed)
