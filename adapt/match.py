"""The training-free match now lives in :mod:`adapt.eval.match`; this module keeps the old import
path working for callers (``experiment``) until they import it from there."""
from adapt.eval.match import (  # noqa: F401
    HIGHLIGHT_LEVEL,
    HIGHLIGHT_MAX_FRAC,
    STEPS,
    MatchTarget,
    check_steps,
    fit_target,
    match,
    match_frame,
)
