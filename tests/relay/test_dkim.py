"""DKIM signing in the relay (lamson.relay.dkim) and ``lamson dkim``, verified by dkimpy through real DNS."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import dkim as dkimpy
import pytest

from lamson import dns as ldns
from lamson.cli import main
from lamson.relay import dkim
from tests.dnsserver import dns_server
from tests.relaykit import RelayKit
from tests.sink import smtp_sink

MESSAGE = (b"From: Lamson <app@test.com>\r\nTo: one@example.org\r\nCc: two@example.org\r\n"
           b"Bcc: hidden@example.org\r\nSubject: signed\r\nDate: Mon, 30 Nov 2026 08:00:00 +0000\r\n"
           b"Message-ID: <1@test.com>\r\n\r\nline one\nline two\rline three\r\n.leading dot\r\n")


@pytest.fixture(scope="module")
def key_and_record(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A key made by ``lamson dkim -genkey`` and the record it printed (once: RSA keys are slow)."""
    path = tmp_path_factory.mktemp("dkim") / "dkim.key"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["dkim", "-genkey", "-selector", "s2026", "-domain", "test.com", "-key", str(path)]) == 0
    records = [line for line in out.getvalue().splitlines() if not line.startswith(";")]
    assert len(records) == 1
    return path, records[0]


@pytest.fixture
def published(key_and_record: tuple[Path, str]) -> Iterator[Callable[..., bytes]]:
    """A dnsfunc for dkimpy asking a real (loopback) DNS server that serves the printed record."""
    _, record = key_and_record
    with dns_server(record) as server:
        resolver = ldns.resolver(SimpleNamespace(dns_config=server.config))

        def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
            answer = resolver.resolve(name.decode("ascii"), "TXT")
            return b"".join(next(iter(answer)).strings)

        yield dnsfunc


def signing_kit(tmp_path: Path, redis_conn: object, key: Path, **extra: object) -> RelayKit:
    return RelayKit(tmp_path, redis_conn,  # type: ignore[arg-type]
                    dkim_config={"domain": "test.com", "selector": "s2026", "key_file": str(key), **extra})


def test_genkey_writes_a_private_key_and_prints_a_split_txt_record(key_and_record: tuple[Path, str]) -> None:
    path, record = key_and_record
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert record.startswith('s2026._domainkey.test.com. IN TXT "v=DKIM1; k=rsa; p=MII')
    strings = re.findall(r'"([^"]*)"', record)
    assert len(strings) == 2 and len(strings[0]) == 255  # 2048 bits: two strings of at most 255 bytes
    assert "".join(strings) == dkim.txt_value(path.read_bytes())
    assert dkim.txt_record(path.read_bytes(), "s2026", "test.com") == record  # without -genkey: the same record


def test_genkey_never_overwrites_and_needs_its_names(key_and_record: tuple[Path, str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = key_and_record
    before = path.read_bytes()
    assert main(["dkim", "-genkey", "-selector", "s", "-domain", "test.com", "-key", str(path)]) == 1
    assert "exists" in capsys.readouterr().err and path.read_bytes() == before
    monkeypatch.chdir(tmp_path)  # no application here
    assert main(["dkim", "-genkey", "-key", str(tmp_path / "k")]) == 2
    assert "-selector, -domain" in capsys.readouterr().err


def test_the_relay_signs_exactly_the_bytes_the_smart_host_receives(
        tmp_path: Path, redis_conn: object, key_and_record: tuple[Path, str],
        published: Callable[..., bytes]) -> None:
    kit = signing_kit(tmp_path, redis_conn, key_and_record[0])
    try:
        with smtp_sink() as sink:
            kit.relay(port=sink.port).deliver(MESSAGE)
            kit.work()
            (received,) = sink.messages
    finally:
        kit.close()
    data = received.data
    assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")  # signed last: above the loop trace
    assert b"X-Lamson-Loop:" in data and b"hidden@example.org" not in data
    assert b" d=test.com;" in data and b" s=s2026;" in data
    assert dkimpy.verify(data, dnsfunc=published)
    assert not dkimpy.verify(data.replace(b"line two", b"line 2"), dnsfunc=published)
    assert not dkimpy.verify(data.replace(b"Subject: signed", b"Subject: changed"), dnsfunc=published)
    assert kit.outbox.waiting() == [] and kit.outbox.claims() == []


def test_only_mail_from_the_domain_is_signed_unless_sign_all(
        tmp_path: Path, redis_conn: object, key_and_record: tuple[Path, str],
        published: Callable[..., bytes]) -> None:
    other = MESSAGE.replace(b"app@test.com", b"someone@elsewhere.org")
    sub = MESSAGE.replace(b"app@test.com", b"app@lists.test.com")
    for sign_all, expected in ((False, [False, True]), (True, [True, True])):
        kit = signing_kit(tmp_path / str(sign_all), redis_conn, key_and_record[0], sign_all=sign_all)
        try:
            with smtp_sink() as sink:
                relay = kit.relay(port=sink.port)
                relay.deliver(other)
                relay.deliver(sub)
                kit.work()
                got = {m.mail_from: m.data for m in sink.messages}
        finally:
            kit.close()
        signed = [got[sender].startswith(b"DKIM-Signature:") for sender in ("someone@elsewhere.org",
                                                                              "app@lists.test.com")]
        assert signed == expected
        for sender, data in got.items():
            if data.startswith(b"DKIM-Signature:"):
                assert dkimpy.verify(data, dnsfunc=published), sender


def test_configured_headers_are_the_ones_signed(tmp_path: Path, key_and_record: tuple[Path, str],
                                                published: Callable[..., bytes]) -> None:
    signer = dkim.Signer(SimpleNamespace(dkim_config={"domain": "test.com", "selector": "s2026",
                                                      "key_file": str(key_and_record[0]),
                                                      "headers": ["From", "Subject"]}))
    data = signer.sign(MESSAGE.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))
    header = data.split(b"\r\n\r\n")[0].split(b"\r\nFrom:")[0]
    tags = dict(t.strip().split(b"=", 1) for t in header.split(b":", 1)[1].replace(b"\r\n", b"").split(b";") if t.strip())
    assert b"".join(tags[b"h"].split()).lower() == b"from:subject"
    assert dkimpy.verify(data, dnsfunc=published)
    assert dkimpy.verify(data.replace(b"Cc: two@", b"Cc: three@"), dnsfunc=published)  # Cc left unsigned
    with pytest.raises(ValueError, match="From"):
        dkim.parse_config({"domain": "d", "selector": "s", "key_file": "k", "headers": ["Subject"]})
    with pytest.raises(ValueError, match="key_file"):
        dkim.parse_config({"domain": "d", "selector": "s"})


def test_an_unusable_key_keeps_the_mail_waiting_until_it_is_fixed(
        tmp_path: Path, redis_conn: object, key_and_record: tuple[Path, str],
        published: Callable[..., bytes], caplog: pytest.LogCaptureFixture) -> None:
    key = tmp_path / "later.key"
    kit = signing_kit(tmp_path, redis_conn, key)
    try:
        with smtp_sink() as sink:
            key_name = kit.relay(port=sink.port).deliver(MESSAGE)
            kit.work()
            assert sink.messages == [] and sink.attempts == 0  # nothing went out unsigned
            assert kit.outbox.waiting() == [key_name]
            assert any("cannot sign with DKIM" in r.getMessage() or "DKIM key file" in r.getMessage()
                       for r in caplog.records)
            key.write_bytes(b"not a key")
            kit.work_until(lambda: kit.outbox.get(key_name).envelope.extra.get("tries") == "2", timeout=10)
            assert sink.messages == []
            key.write_bytes(key_and_record[0].read_bytes())  # fixed: the next try sends it, signed
            kit.work_until(lambda: sink.messages, timeout=10)
            (received,) = sink.messages
    finally:
        kit.close()
    assert dkimpy.verify(received.data, dnsfunc=published)
    assert kit.outbox.waiting() == [] and kit.bounced() == []


def test_a_message_that_cannot_be_signed_is_sent_unsigned(tmp_path: Path, key_and_record: tuple[Path, str],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    signer = dkim.Signer(SimpleNamespace(dkim_config={"domain": "test.com", "selector": "s2026",
                                                      "key_file": str(key_and_record[0])}))

    def broken(*args: object, **kwargs: object) -> bytes:
        raise dkimpy.MessageFormatError("bad header")

    monkeypatch.setattr(dkimpy, "sign", broken)
    assert signer.sign(b"From: a@test.com\r\n\r\nbody\r\n", "k1") == b"From: a@test.com\r\n\r\nbody\r\n"
    assert "k1 sent unsigned" in caplog.text


def test_the_key_is_read_once_per_process(key_and_record: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(key_and_record[0])
    dkim.load_key(path)
    reads: list[object] = []
    real = Path.read_bytes

    def counted(self: Path) -> bytes:
        reads.append(self)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", counted)
    for _ in range(3):
        dkim.load_key(path)
    assert reads == []


def test_openssl_fallback_makes_a_key_dkimpy_can_use(tmp_path: Path) -> None:
    pem = dkim._openssl_key(1024)
    key = tmp_path / "o.key"
    key.write_bytes(pem)
    value = dkim.txt_value(pem)
    signer = dkim.Signer(SimpleNamespace(dkim_config={"domain": "test.com", "selector": "o",
                                                      "key_file": str(key)}))
    data = signer.sign(b"From: a@test.com\r\nSubject: x\r\n\r\nbody\r\n")
    assert dkimpy.verify(data, dnsfunc=lambda name, timeout=5: value.encode("ascii"))


def independent_verify(data: bytes, public_b64: str) -> bool:
    """A second verifier, not dkimpy: RFC 6376 relaxed header / simple body canonicalization by hand
    (3.4.2, 3.4.3) and the RSA check by ``cryptography``, over the bytes as received."""
    import base64
    import hashlib

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    head, _, body = data.partition(b"\r\n\r\n")
    fields: list[tuple[bytes, bytes]] = []  # (name, the whole field with its folding)
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            fields[-1] = (fields[-1][0], fields[-1][1] + b"\r\n" + line)
        else:
            fields.append((line.split(b":", 1)[0], line))

    def relaxed(field: bytes) -> bytes:
        name, value = field.split(b":", 1)
        value = re.sub(rb"[ \t]+", b" ", value.replace(b"\r\n", b"")).strip(b" ")
        return name.strip().lower() + b":" + value + b"\r\n"

    signature = fields[0][1]
    assert fields[0][0].lower() == b"dkim-signature"
    tags = {k.strip(): v for k, v in (t.split(b"=", 1) for t in
                                      re.sub(rb"\s+", b"", signature.split(b":", 1)[1]).split(b";") if t)}
    assert tags[b"c"] == b"relaxed/simple" and tags[b"a"] == b"rsa-sha256"
    simple_body = re.sub(rb"(\r\n)*$", b"", body) + b"\r\n"  # 3.4.3: trailing empty lines go, one CRLF stays
    if base64.b64decode(tags[b"bh"]) != hashlib.sha256(simple_body).digest():
        return False
    remaining = list(reversed(fields[1:]))  # 5.4.2: the last instance of a name first
    signed = b""
    for name in tags[b"h"].split(b":"):
        match = next((f for f in remaining if f[0].lower() == name.lower()), None)
        if match is not None:
            remaining.remove(match)
            signed += relaxed(match[1])
    unsigned_sig = re.sub(rb"(\bb=)[^;]*", rb"\1", signature)
    signed += relaxed(unsigned_sig)[:-2]  # the DKIM-Signature itself, b= empty, no final CRLF
    key = serialization.load_der_public_key(base64.b64decode(public_b64))
    assert isinstance(key, rsa.RSAPublicKey)
    try:
        key.verify(base64.b64decode(tags[b"b"]), signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def test_a_second_verifier_agrees_on_the_bytes_received(tmp_path: Path, redis_conn: object,
                                                        key_and_record: tuple[Path, str]) -> None:
    kit = signing_kit(tmp_path, redis_conn, key_and_record[0])
    try:
        with smtp_sink() as sink:
            kit.relay(port=sink.port).deliver(MESSAGE)
            kit.work()
            (received,) = sink.messages
    finally:
        kit.close()
    public = dkim.public_key_b64(key_and_record[0].read_bytes())
    assert independent_verify(received.data, public)
    assert not independent_verify(received.data.replace(b"line two", b"line 2"), public)
    assert not independent_verify(received.data.replace(b"Subject: signed", b"Subject: signe"), public)


def test_internationalized_domains_match_as_a_labels(key_and_record: tuple[Path, str]) -> None:
    signer = dkim.Signer(SimpleNamespace(dkim_config={"domain": "bücher.example", "selector": "s",
                                                      "key_file": str(key_and_record[0])}))
    assert signer.config is not None and signer.config.domain == "xn--bcher-kva.example"
    assert signer.wants("From: a@B\u00fcCHER.example\r\n\r\n".encode())
    assert signer.wants(b"From: a@news.xn--bcher-kva.example.\r\n\r\n")
    assert not signer.wants(b"From: a@xn--bcher-kva.example.org\r\n\r\n")
    assert dkim.Signer(SimpleNamespace()).sign(b"x") == b"x"  # no dkim_config: nothing to do


def test_utf8_headers_and_body_are_signed(key_and_record: tuple[Path, str],
                                          published: Callable[..., bytes]) -> None:
    signer = dkim.Signer(SimpleNamespace(dkim_config={"domain": "test.com", "selector": "s2026",
                                                      "key_file": str(key_and_record[0])}))
    data = signer.sign("From: Jösé <a@test.com>\r\nSubject: héllo\r\n\r\nbødy".encode())
    assert data.startswith(b"DKIM-Signature:") and data.endswith("bødy\r\n".encode())  # the CRLF smtplib adds
    assert dkimpy.verify(data, dnsfunc=published)
