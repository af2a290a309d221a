"""The compiled kernels (:mod:`colonsim.render._fused`, numba), loaded on first use.

Loading a config imports the modules that use them, and numba takes about 0.4 s to import, so
nothing imports :mod:`colonsim.render._fused` at module level. Without numba, :func:`compiled` is None and
every caller runs its NumPy reference, which gives the same values.
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def compiled():
    """:mod:`colonsim.render._fused`, or None where numba is not installed."""
    try:
        from colonsim.render import _fused
    except ImportError:
        return None
    return _fused
