"""Why Ray could not finish a trial, in words: the error a lost task, worker, node or cluster gives the trial.

Imports Ray only inside ``lost_reason`` (which is called with a Ray exception in hand).
"""

from __future__ import annotations

__all__ = ["first_line", "lost_reason"]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def lost_reason(exc: BaseException) -> str:
    """Why Ray could not finish a trial, in words (the trial's error)."""
    from ray import exceptions as rex

    if isinstance(exc, rex.OutOfMemoryError):
        return f"the trial ran out of memory: Ray's memory monitor killed its worker ({first_line(exc)})"
    if isinstance(exc, rex.NodeDiedError | rex.LocalRayletDiedError):
        return f"the Ray node running the trial was lost ({first_line(exc)})"
    if isinstance(exc, rex.WorkerCrashedError):
        return "the Ray worker process running the trial died (killed, out of memory, or crashed)"
    if isinstance(exc, rex.ObjectLostError):
        return f"the Ray node holding the trial's output was lost ({type(exc).__name__})"
    return f"Ray could not run the trial: {type(exc).__name__}: {first_line(exc)}"
