"""The adapt benchmark scripts take the same tiny synthetic file and real-frame folder as adapt's tests."""
from tests.adapt.conftest import real_dir, synthetic_h5  # noqa: F401  (pytest fixtures)
