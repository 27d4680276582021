"""optirec.rules: the knowledge base (declarative data files) and the engine that reads it.

Imports only the standard library and pydantic: the recommend path never imports torch.
"""

from .derive import derive_hyperparameters
from .diagnose import Diagnosis, diagnose
from .engine import recommend
from .errors import FieldIssue, OptirecError, ProfileError, RulebookError, UnknownNameError
from .loader import DATA_DIR, Rulebook, default_rulebook, load_rulebook
from .profile import Profile, parse_profile, profile_field_options
from .recommendation import Recommendation

__all__ = [
    "DATA_DIR",
    "Diagnosis",
    "FieldIssue",
    "OptirecError",
    "Profile",
    "ProfileError",
    "Recommendation",
    "Rulebook",
    "RulebookError",
    "UnknownNameError",
    "default_rulebook",
    "derive_hyperparameters",
    "diagnose",
    "load_rulebook",
    "parse_profile",
    "profile_field_options",
    "recommend",
]
