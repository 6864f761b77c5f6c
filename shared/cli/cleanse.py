"""``lamson cleanse -input MAILDIR_OR_MBOX -output MAILDIR``: stored mail, canonicalised.

Lamson 1.x's command for turning a pile of real-world mail (mislabelled
charsets, odd transfer encodings, encoded words everywhere) into test data a
test suite can rely on. Each message is read through the mail model
(:class:`lamson.mail.MailRequest`, with its limits and charset fallbacks) and
written back in one canonical form: every header decoded and re-encoded,
every text part as UTF-8, binary parts with their exact bytes, 7-bit
transfer encodings, CRLF line ends. A message the mail model refuses (over
its limits) is reported and left out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from email.message import EmailMessage, Message
from pathlib import Path

from lamson.cli.blast import messages
from lamson.cli.framework import Command, CommandError, Parser, option


class Unreadable(Exception):
    """The mail model refused the message (it is over one of its limits)."""


def canonicalise(data: bytes) -> bytes:
    """The canonical bytes of one message (see the module docstring). Raises Unreadable."""
    from lamson.mail import WRITE_POLICY, MailRequest

    request = MailRequest("cleanse", None, None, data)
    refused = request.refused
    if refused:
        raise Unreadable(refused)
    out = _rebuild(request.to_message())
    out["MIME-Version"] = "1.0"
    return out.as_bytes(policy=WRITE_POLICY)


def _copy_headers(source: Message, target: EmailMessage, skip: Callable[[str], bool]) -> None:
    """Decoded header values, re-encoded by the write policy; a value it cannot take is kept raw."""
    from lamson.encoding import clean_header, decode_header_text, neutralise

    for name, raw in source.items():
        if skip(name.lower()):
            continue
        try:
            target[name] = clean_header(name, decode_header_text(str(raw)))
        except Exception:  # noqa: BLE001 - malformed address header: keep it as it came, neutralised
            target[name] = neutralise(str(raw))


def _rebuild(part: Message) -> EmailMessage:
    """A new EmailMessage with ``part``'s headers and content in canonical form, recursively.

    Headers keep their order; the content headers are written by
    ``set_content`` from the content itself, then any other ``Content-*``
    header of the original (Content-ID, Content-Description, ...) is kept.
    """
    from lamson.mail import WRITE_POLICY, part_bytes, part_text

    new = EmailMessage(policy=WRITE_POLICY)
    _copy_headers(part, new, lambda name: name.startswith("content-") or name == "mime-version")
    ctype = part.get_content_type()
    maintype, subtype = ctype.split("/", 1)
    if part.is_multipart() and maintype == "multipart":
        new["Content-Type"] = ctype
        children: list[Message] = part.get_payload()  # type: ignore[assignment]  # a list when multipart
        for child in children:
            new.attach(_rebuild(child))
    elif part.is_multipart():  # message/rfc822 and friends: the enclosed message, canonical too
        enclosed: list[Message] = part.get_payload()  # type: ignore[assignment]  # a list when multipart
        new.set_content(_rebuild(enclosed[0]), subtype=subtype)
    else:
        name = part.get_param("name")
        params = {"name": name} if isinstance(name, str) else None
        disposition, filename = part.get_content_disposition(), part.get_filename()
        if maintype == "text":
            new.set_content(part_text(part), subtype=subtype, charset="utf-8", disposition=disposition,
                            filename=filename, params=params)
        else:
            new.set_content(part_bytes(part), maintype=maintype, subtype=subtype, disposition=disposition,
                            filename=filename, params=params)
    del new["MIME-Version"]  # set_content adds it to every part; only the message itself has one
    present = {k.lower() for k in new.keys()}
    _copy_headers(part, new, lambda name: not name.startswith("content-") or name in present)
    return new


def configure(parser: Parser) -> None:
    option(parser, "input", required=True, metavar="PATH", help="a Maildir (with new/ and cur/) or an mbox file")
    option(parser, "output", required=True, metavar="DIR", help="the Maildir to write (created if missing)")


def run(args: argparse.Namespace) -> int:
    from lamson import maildir

    source, target = Path(args.input), Path(args.output)
    if source.exists() and target.exists() and source.resolve() == target.resolve():
        raise CommandError("-input and -output are the same Maildir; write the cleansed copy elsewhere")
    try:
        out = maildir.ensure(target)
    except OSError as exc:
        raise CommandError(f"cannot create the Maildir {target}: {exc.strerror or exc}") from None
    done = failed = 0
    if not source.exists():  # 1.x opened the input as a Maildir it created: nothing there yet, nothing to do
        print(f"cleansed 0, failed 0: {args.input} does not exist (yet): nothing to cleanse; {out} ready")
        return 0
    for index, data in enumerate(messages(source)):
        try:
            clean = canonicalise(data)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the run
            failed += 1
            print(f"message {index + 1}: left out: {' '.join(str(exc).split()) or type(exc).__name__}",
                  file=sys.stderr)
            continue
        maildir.write(out, clean)
        done += 1
    print(f"cleansed {done}, failed {failed}: {args.input} -> {out}")
    return 1 if failed else 0


COMMANDS = {
    "cleanse": Command(
        name="cleanse",
        summary="rewrite a Maildir or mbox of messages in canonical form into a Maildir (test data)",
        examples=("lamson cleanse -input saved.mbox -output tests/data/clean",
                  "lamson cleanse --input run/queue --output run/clean"),
        configure=configure,
        run=run,
        description="Read every message of a Maildir (new/ then cur/) or an mbox file through Lamson's mail\n"
                    "model and write it into the Maildir -output in one canonical form: headers decoded and\n"
                    "re-encoded, text parts as UTF-8, binary parts byte for byte, 7-bit transfer encodings,\n"
                    "CRLF. A message the mail model refuses is named on stderr and left out (exit 1).\n"
                    "An -input that does not exist yet (run/queue before any mail) is an empty input, as\n"
                    "in Lamson 1.x: the -output Maildir is created and the command succeeds.",
    ),
}
