"""``lamson dkim``: make a DKIM signing key and print the DNS record to publish.

``-genkey`` writes a new RSA private key (PEM, mode 0600; an existing file is never
overwritten) and prints the TXT record of its public key, in strings of at most 255
bytes, ready for a zone file. Without ``-genkey`` it prints the record of the key that
exists. Selector, domain and key file default to ``dkim_config`` in the settings when
there is one. Then set ``dkim_config`` so the relay signs outgoing mail
(lamson.relay.dkim, README "Publishing your DKIM key").
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lamson.cli.framework import Command, CommandError, Parser, UsageError, app_options, option


def key_bits(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad key size {text!r}") from None
    if value < 1024 or value > 8192:
        raise argparse.ArgumentTypeError(f"bad key size {text!r} (1024 to 8192; 2048 is what everyone uses)")
    return value


def configure(parser: Parser) -> None:
    option(parser, "genkey", action="store_true", help="generate a new private key (else: use the existing one)")
    option(parser, "selector", default=None, help="DKIM selector (default: dkim_config['selector'])")
    option(parser, "domain", default=None, help="signing domain, d= (default: dkim_config['domain'])")
    option(parser, "key", default=None, metavar="FILE",
           help="private key file (default: dkim_config['key_file'])")
    option(parser, "bits", type=key_bits, default=2048, help="RSA key size for -genkey (default 2048)")
    app_options(parser)


def configured(args: argparse.Namespace) -> dict[str, str]:
    """dkim_config from the application's settings, if they load and have one (else {})."""
    if args.selector and args.domain and args.key:
        return {}
    from lamson import settings as lsettings

    try:
        conf = lsettings.load_typed(args.config, args.root)
    except lsettings.SettingsError:
        if args.config or args.root:
            raise
        return {}  # not inside an application: the options must say it all
    return dict(conf.dkim_config or {})


def run(args: argparse.Namespace) -> int:
    from lamson.relay import dkim

    found = configured(args)
    selector = args.selector or found.get("selector")
    domain = args.domain or found.get("domain")
    key = args.key or found.get("key_file")
    missing = [name for name, value in (("selector", selector), ("domain", domain), ("key", key)) if not value]
    if missing:
        raise UsageError(f"lamson dkim: give -{', -'.join(missing)} (or set dkim_config in the settings)")
    assert selector and domain and key
    path = Path(key) if os.path.isabs(key) or not args.root else Path(args.root) / key
    if args.genkey:
        if path.exists():
            raise CommandError(f"{path} exists; not overwriting a key (remove it, or drop -genkey to print its record)")
        try:
            pem = dkim.generate_key(path, args.bits)
        except Exception as exc:  # OSError, openssl failing
            raise CommandError(f"cannot write a key to {path}: {exc}") from None
        print(f"; private key written to {path} (mode 0600); publish this record, then set dkim_config:")
    else:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc} (use -genkey to make one)") from None
    try:
        record = dkim.txt_record(pem, selector, domain)
    except Exception as exc:
        raise CommandError(f"{path} holds no usable RSA private key: {exc}") from None
    print(record)
    return 0


COMMANDS = {
    "dkim": Command(
        name="dkim",
        summary="make a DKIM signing key and print the DNS TXT record to publish",
        examples=("lamson dkim -genkey -selector mail2026 -domain example.com -key config/dkim.key",
                  "lamson dkim   # the record of dkim_config's key"),
        configure=configure,
        run=run,
        description=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    ),
}
