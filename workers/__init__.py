"""Router workers: rq workers that load the application once and run routing jobs.

A worker is a stock rq ``SimpleWorker`` (no fork per job: forking costs
about four times the throughput, see DESIGN.md) plus a sweeper thread that
re-enqueues spooled messages with no live job. The job functions live in
:mod:`lamson.workers.jobs`; the process entry point in :mod:`lamson.workers.worker`.
"""
