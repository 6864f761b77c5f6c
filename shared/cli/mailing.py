"""``lamson send`` (build a message from options) and ``lamson sendmail`` (mail clients).

Both talk SMTP to any server, by default the project's receiver
(``receiver_config``), so you can watch the protocol with ``-debug 1`` or make
mutt deliver straight into a running Lamson.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import sys
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path

from lamson.cli import project, smtpclient
from lamson.cli.framework import Command, CommandError, Parser, UsageError, app_options, option, port_number


def server_options(parser: Parser) -> None:
    option(parser, "host", default=None, help="SMTP server (default: receiver_config['host'])")
    option(parser, "port", type=port_number, default=None, help="SMTP port (default: receiver_config['port'])")
    option(parser, "debug", type=int, default=0, metavar="N", help="1 prints the whole SMTP conversation")
    app_options(parser)


def server_address(args: argparse.Namespace) -> tuple[str, int]:
    """-host/-port, else the project's receiver, else the defaults."""
    if args.host and args.port:
        return args.host, args.port
    conf = project.settings_or_defaults(args.config, args.root).receiver_config
    return args.host or conf["host"], args.port or conf["port"]


def configure_send(parser: Parser) -> None:
    option(parser, "sender", required=True, metavar="ADDRESS", help="From: and envelope sender")
    option(parser, "to", required=True, action="append", metavar="ADDRESS",
           help="To: and envelope recipient (repeatable, or comma separated)")
    option(parser, "subject", default="", help="Subject:")
    option(parser, "body", default="", help="plain text body ('-' reads it from stdin)")
    option(parser, "attach", action="append", default=[], metavar="FILE", help="attach a file (repeatable)")
    server_options(parser)


def build_message(sender: str, recipients: list[str], subject: str, body: str, attachments: list[str]) -> EmailMessage:
    """A proper MIME message: text body, optional attachments of any type, Date and Message-ID."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=domain_of(sender))
    message.set_content(body if body.endswith("\n") else body + "\n")
    for name in attachments:
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read attachment {name}: {exc.strerror}") from None
        kind, encoding = mimetypes.guess_type(path.name)
        if kind is None or encoding is not None:
            kind = "application/octet-stream"
        maintype, subtype = kind.split("/", 1)
        if maintype == "text":
            try:
                message.add_attachment(data.decode("utf-8"), subtype=subtype, filename=path.name)
                continue
            except UnicodeDecodeError:
                maintype, subtype = "application", "octet-stream"
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    return message


def domain_of(address: str) -> str | None:
    _, _, domain = address.rpartition("@")
    return domain.strip("> ") or None


def split_addresses(values: list[str]) -> list[str]:
    """Addresses from repeated and comma-separated options, each checked."""
    found = [addr for _name, addr in getaddresses(values) if addr]
    for addr in found:
        check_address(addr)
    if not found:
        raise UsageError(f"no recipient address in {values!r}")
    return found


def check_address(addr: str) -> str:
    """Refuse what no SMTP server would take as an address (and option names typed by mistake)."""
    if addr.startswith("-") or any(ch in addr for ch in " \t\r\n<>\x00"):
        raise UsageError(f"not an email address: {addr!r}")
    try:
        Address(addr_spec=addr)
    except (ValueError, IndexError):
        raise UsageError(f"not an email address: {addr!r}") from None
    return addr


def send(args: argparse.Namespace) -> int:
    sender = check_address(args.sender)
    recipients = split_addresses(args.to)
    body = sys.stdin.read() if args.body == "-" else args.body
    message = build_message(sender, recipients, args.subject, body, args.attach)
    host, port = server_address(args)
    smtpclient.deliver(host, port, sender, recipients, message.as_bytes(), args.debug)
    return 0


# --- sendmail ---------------------------------------------------------------

#: Flags mail clients pass to sendmail that mean nothing here (delivery mode,
#: error mode, "dots are data", 8BITMIME body type, DSN options, ...).
IGNORED_FLAG_PREFIXES = ("-o", "-B", "-N", "-R", "-V", "-X", "-b", "-q", "-L", "-O")
IGNORED_FLAGS = {"-i", "-U", "-G", "-v", "-m", "-n", "-s", "-em", "-ep", "-eq", "-ew"}
#: Flags that take a separate value which is ignored.
IGNORED_WITH_VALUE = {"-F", "-h", "-C", "-p"}
OUR_OPTIONS = {"host", "port", "debug", "config", "root"}


def prepare_sendmail(argv: list[str]) -> list[str]:
    """Rewrite a sendmail command line (as mutt builds it) into this command's options.

    Lamson's own ``-host``/``-port``/``-debug`` are kept, ``-f ADDR``/``-fADDR`` and
    ``-t`` are understood, the usual sendmail flags are dropped, and everything
    after ``--`` is a recipient even if it starts with a dash.
    """
    out: list[str] = []
    recipients: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        bare = arg.lstrip("-").split("=", 1)[0]
        if arg == "--":
            recipients += argv[i + 1:]
            break
        if arg.startswith("-") and bare in OUR_OPTIONS and len(arg) > 2:
            out.append(arg)
            if "=" not in arg and i + 1 < len(argv):
                out.append(argv[i + 1])
                i += 1
        elif arg == "-t":
            out.append("-t")
        elif arg == "-f" or arg == "-r":
            if i + 1 >= len(argv):
                raise UsageError("lamson sendmail: -f needs an address")
            out += ["-f", argv[i + 1]]
            i += 1
        elif arg.startswith("-f") and len(arg) > 2:
            out += ["-f", arg[2:]]
        elif arg in IGNORED_WITH_VALUE:
            i += 1
        elif arg in IGNORED_FLAGS or arg.startswith(IGNORED_FLAG_PREFIXES) and not arg.startswith("--"):
            pass
        elif arg.startswith("-") and len(arg) > 1:
            raise UsageError(f"lamson sendmail: unknown option {arg!r} (see: lamson help -for sendmail)")
        else:
            recipients.append(arg)
        i += 1
    return out + ["--"] + recipients


def configure_sendmail(parser: Parser) -> None:
    parser.add_argument("-f", dest="sender", default=None, metavar="FROM", help="envelope sender")
    parser.add_argument("-t", dest="from_headers", action="store_true",
                        help="take recipients from the To, Cc and Bcc headers (Bcc is then removed)")
    server_options(parser)
    parser.add_argument("recipients", nargs="*", metavar="RECIPIENT")


def remove_header(data: bytes, name: bytes) -> bytes:
    """The message with every ``name:`` header (and its continuation lines) removed."""
    head, sep, body = data.partition(b"\n\n") if b"\r\n\r\n" not in data else data.partition(b"\r\n\r\n")
    kept: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.lower().startswith(name.lower() + b":")
        if not dropping:
            kept.append(line)
    return b"".join(kept) + sep + body


def sendmail(args: argparse.Namespace) -> int:
    data = smtpclient.strip_mbox_separator(sys.stdin.buffer.read())
    if not data.strip():
        raise CommandError("no message on standard input", code=2)
    headers = BytesHeaderParser().parsebytes(data)
    recipients = [check_address(r) for r in args.recipients]
    if args.from_headers:
        fields = [v for h in ("to", "cc", "bcc") for v in headers.get_all(h, [])]
        recipients += [addr for _n, addr in getaddresses([str(f) for f in fields]) if addr]
        data = remove_header(data, b"bcc")
    if not recipients:
        raise UsageError("lamson sendmail: no recipients (give them as arguments, or -t to read the headers)")
    sender = args.sender
    if sender is None:
        found = [addr for _n, addr in getaddresses([str(v) for v in headers.get_all("from", [])]) if addr]
        sender = found[0] if found else os.environ.get("USER", "lamson") + "@localhost"
    host, port = server_address(args)
    smtpclient.deliver(host, port, sender, list(dict.fromkeys(recipients)), data, args.debug)
    return 0


COMMANDS = {
    "send": Command(
        name="send",
        summary="build a MIME message and send it over SMTP (-debug 1 shows the protocol)",
        examples=(
            'lamson send -sender me@test.com -to hello@test.com -subject "My test." -body "Hi there." -port 8823',
            "lamson send -sender me@test.com -to you@test.com -attach photo.jpg -debug 1",
        ),
        configure=configure_send,
        run=send,
        description="Build a proper MIME message (text body, optional attachments of any type) and send it\n"
                    "over SMTP, by default to the project's receiver (receiver_config).",
    ),
    "sendmail": Command(
        name="sendmail",
        summary="read a message on stdin and send it over SMTP, as mail clients call sendmail",
        examples=(
            "lamson sendmail -port 8823 -host 127.0.0.1 hello@test.com < message.eml",
            'muttrc: set sendmail="/usr/bin/env lamson sendmail -port 8823 -host 127.0.0.1"',
        ),
        configure=configure_sendmail,
        run=sendmail,
        prepare=prepare_sendmail,
        description="Read a complete message on standard input and deliver it over SMTP, by default to the\n"
                    "project's receiver. The usual sendmail flags mail clients pass (-oi, -oem, -B8BITMIME,\n"
                    "-i, ...) are accepted and ignored; -f sets the envelope sender (default: the From\n"
                    "header); -t also takes recipients from To/Cc/Bcc; recipients after -- may start with '-'.",
    ),
}
