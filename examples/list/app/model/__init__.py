"""Non-handler code: models, database access, Maildir queues of your own.

Nothing here is loaded by magic: import what you need from your handlers.
"""
