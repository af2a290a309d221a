"""ColonSim: an endoscope forward model that renders colon meshes into HDF5 datasets of RGB frames
paired with exact depth, for sim-to-real learning (Mahmood, Chen, Durr 2017, arXiv 1711.06606).

Public API: configs (:mod:`colonsim.config`), the HDF5 schema (:mod:`colonsim.schema`), errors
(:mod:`colonsim.errors`). Heavy modules (render backend, torch Dataset) are imported on demand.
"""
__version__ = "0.1.0"

from . import schema  # noqa: E402,F401
from .errors import (  # noqa: E402,F401
    CheckpointError, ColonSimError, ConfigError, DatasetError, InputError, MeshError, RenderBackendError,
)

__all__ = ["__version__", "schema", "ColonSimError", "ConfigError", "InputError", "MeshError",
           "DatasetError", "CheckpointError", "RenderBackendError"]
