import json
import os

from app.model import archive
from lamson.mail import MailResponse


def setup():
    archive.clear("tests")


def test_store_writes_the_base_as_json():
    setup()
    post = MailResponse(To="tests@example.com", From="reader@localhost", Subject="Stored", Body="Keep me.")
    path = archive.store("tests", post)
    assert os.path.exists(path)
    data = json.load(open(path))
    assert data['headers']['Subject'] == "Stored"
    assert data['headers']['To'] == "tests@example.com"
    assert data['body'] == "Keep me."
    assert archive.posts("tests") == [data]


def test_store_keeps_attachments_as_parts():
    setup()
    post = MailResponse(To="tests@example.com", From="reader@localhost", Subject="Files", Body="See attached.")
    post.attach(filename="notes.txt", content_type="text/plain", data="Line one.\n", disposition="attachment")
    archive.store("tests", post)
    (data,) = archive.posts("tests")
    assert len(data['parts']) == 2
    assert data['parts'][0]['body'] == "See attached."
    disposition, params = data['parts'][1]['content_encoding']['Content-Disposition']
    assert disposition == "attachment"
    assert params['filename'] == "notes.txt"
    assert data['parts'][1]['body'] == "Line one.\n"
