"""Trial runs behind the REST service: request/response models, the SQLite store, the dispatcher and the worker.

    models   TrialRequest, TrialStatus, WorkloadInfo and the torch-free workload catalog (API and client side)
    store    TrialStore: the SQLite queue and results (stdlib sqlite3, WAL)
    runner   TrialRunner: the dispatcher in the API process; one worker process per concurrency slot
    worker   the worker process (``python -m optirec.service.trials.worker``): the only place torch is imported
    jobs     what a worker does with one job (shared with ``optirec trial`` run locally)

Nothing here but ``worker`` and ``jobs`` imports torch, and those only run in the worker process or the CLI.
"""

from __future__ import annotations
