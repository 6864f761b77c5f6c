"""redis+sentinel:// URLs: parsing, credentials, redaction, validation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lamson import settings as lsettings
from lamson.connection import parse_sentinel_url, redact, url_password, with_credentials, with_password


def test_a_sentinel_url_names_the_sentinels_the_service_and_both_passwords() -> None:
    url = "redis+sentinel://:pw@127.0.0.1:26380,[::1]:26381,sentinel3/mymaster/2?sentinel_password=sp"
    parsed = parse_sentinel_url(url)
    assert parsed.sentinels == [("127.0.0.1", 26380), ("::1", 26381), ("sentinel3", 26379)]
    assert (parsed.service, parsed.db, parsed.password, parsed.sentinel_password) == ("mymaster", 2, "pw", "sp")
    assert url_password(url) == "pw"
    assert redact(url) == "redis+sentinel://:***@127.0.0.1:26380,[::1]:26381,sentinel3/mymaster/2?sentinel_password=***"


def test_the_password_file_fills_a_sentinel_url_without_one(tmp_path) -> None:
    assert with_password("redis+sentinel://h1:1,h2:2/mm", "a/b") == "redis+sentinel://default:a%2Fb@h1:1,h2:2/mm"
    (tmp_path / "redis.pass").write_text("secret\n")
    assert with_credentials("redis+sentinel://h1:1/mm", tmp_path) == "redis+sentinel://default:secret@h1:1/mm"


@pytest.mark.parametrize("url", ["redis+sentinel://h1:1", "redis+sentinel:///mm", "redis+sentinel://h1:x/mm",
                                 "redis+sentinel://h1/mm/notadb"])
def test_a_bad_sentinel_url_is_refused_at_load(url: str) -> None:
    with pytest.raises(ValueError):
        parse_sentinel_url(url)
    module = SimpleNamespace(**{k: v for k, v in lsettings.DEFAULTS.items()})
    module.redis_url = url
    with pytest.raises(lsettings.SettingsError, match="redis_url"):
        lsettings.validate(module)
