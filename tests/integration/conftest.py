"""tests/integration: each export run by the library it targets.

``export_profiles`` (the shared job table) is importable from the test modules here and from
bench/exports.py: this folder goes on sys.path (the suite imports test files with importlib, which
does not add their folders)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
