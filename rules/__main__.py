"""``python -m optirec.rules [--sources FILE] RECIPES.toml ...``: check recipe files (see rules/recipe_tools.py)."""

import sys

from .recipe_tools import main

sys.exit(main())
