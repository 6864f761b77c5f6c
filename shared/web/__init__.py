"""``lamson web``: a development inbox and pipeline console in the browser (docs/web.md).

It reads the application's Maildirs (the logging server's ``run/queue``, parked mail, Maildir
queues), lets the developer answer the application as the other side of a conversation (over SMTP
to the application's own receiver) and shows the pipeline's state beside the mail. Every page is
built on the JSON API under ``/api``, which tests use too.

Modules: :mod:`lamson.web.context` (what every request handler is handed), :mod:`lamson.web.app`
(the Starlette application), :mod:`lamson.web.mail_api` and the index behind it,
:mod:`lamson.web.pipeline_api`, :mod:`lamson.web.security` (bind rules, password, CSRF).
"""
