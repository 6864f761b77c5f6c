"""The copy members receive: the body untouched, old list headers replaced by ours."""

from app.model.headers import list_copy, list_headers

POST = (
    b"From: alice@example.org\r\n"
    b"To: lamson@test.com\r\n"
    b"List-Id: Other <other.example.org>\r\n"
    b"List-Unsubscribe: <mailto:other-unsubscribe@example.org>,\r\n"
    b"  <https://example.org/unsubscribe>\r\n"
    b"Precedence: bulk\r\n"
    b"Subject: Hello\r\n"
    b"\r\n"
    b"Body line 1\r\n"
    b"List-Id: in the body stays\r\n"
)


def test_copy_replaces_list_headers_and_keeps_the_body_bytes():
    copy = list_copy(POST, list_headers("lamson", "test.com", "Talk about Lamson"))
    head, _, body = copy.partition(b"\r\n\r\n")
    assert body == b"Body line 1\r\nList-Id: in the body stays\r\n"
    lines = head.split(b"\r\n")
    assert lines[0] == b"List-Id: Talk about Lamson <lamson.test.com>"
    assert b"List-Unsubscribe: <mailto:lamson-unsubscribe@test.com>" in lines
    assert b"Precedence: list" in lines and b"Precedence: bulk" not in lines
    assert b"X-Loop: lamson@test.com" in lines
    assert not any(b"other" in line for line in lines)  # the continuation line went with its header
    assert b"Subject: Hello" in lines and b"From: alice@example.org" in lines


def test_archive_url_is_optional():
    names = [n for n, _ in list_headers("lamson", "test.com", "", None)]
    assert "List-Archive" not in names and "List-Unsubscribe-Post" not in names
    with_url = dict(list_headers("lamson", "test.com", "", "https://{host}/a/{list}/"))
    assert with_url["List-Archive"] == "<https://test.com/a/lamson/>"
    assert with_url["List-Id"] == "<lamson.test.com>"


def test_lf_only_mail_keeps_its_line_ends():
    copy = list_copy(b"Subject: x\n\nbody\n", list_headers("lamson", "test.com", "d"))
    assert b"\r" not in copy and copy.endswith(b"Subject: x\n\nbody\n")
