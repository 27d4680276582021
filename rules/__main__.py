"""``python -m optirec.rules [--sources FILE] RECIPES.toml ...``: check recipe files (see rules/recipes.py)."""

import sys

from .recipes import main

sys.exit(main())
