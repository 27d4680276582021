"""What devices this server's trial workers can use, found out without importing torch in the API process.

``POST /trials`` refuses ``"device": "cuda"`` up front on a server without CUDA (a trial would otherwise queue
and fail in its worker minutes later). The answer comes from the same place the worker's answer would:
``torch.cuda.is_available()``, asked once in a child process of the server's own interpreter (importing
torch costs seconds and hundreds of MB, which the API process never pays) and cached for the process's life.
A probe that cannot answer (no torch, a crash, a timeout) decides nothing: the trial is accepted and its
worker reports what went wrong, as before.
"""

from __future__ import annotations

import subprocess
import sys
import threading

__all__ = ["PROBE", "cuda_device_count", "trial_devices"]

#: The child's program: the number of CUDA devices torch can use (0 without CUDA).
PROBE = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
#: Seconds the probe may take (importing torch on a cold disk).
PROBE_TIMEOUT = 120.0

_lock = threading.Lock()
_answer: list[int | None] = []  # empty until probed; then [count] or [None] (the probe could not tell)


def _probe() -> int | None:
    try:
        out = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip().splitlines()[-1:] if out.returncode == 0 else []
    return int(text[0]) if text and text[0].isdigit() else None


def cuda_device_count() -> int | None:
    """CUDA devices the workers can use (0: none), or None when that could not be found out. Probed once."""
    with _lock:
        if not _answer:
            _answer.append(_probe())
        return _answer[0]


def trial_devices(cuda: int | None) -> list[str]:
    """The ``device`` values a trial may ask for, given the CUDA device count (None: unknown, all of them)."""
    return ["auto", "cpu"] if cuda == 0 else ["auto", "cpu", "cuda"]
