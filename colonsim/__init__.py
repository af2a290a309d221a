"""ColonSim: an endoscope forward model that renders colon meshes into HDF5 datasets of RGB frames
paired with exact depth, for sim-to-real learning (Mahmood, Chen, Durr 2017, arXiv 1711.06606).

The public API, which ``adapt``, ``depth``, ``experiment`` and users import::

    import colonsim
    cfg = colonsim.load_sim_config("realistic", overrides=["output.size_px=128"])
    colonsim.render_dataset(cfg, "train.h5", 64, seed=0, workers=2)
    ds = colonsim.FrameDataset("train.h5")          # a torch Dataset

The subpackages follow the data flow: :mod:`colonsim.anatomy` (meshes), :mod:`colonsim.render`
(optics and the GL backend), :mod:`colonsim.data` (HDF5 schema, writer, reader, real frames),
:mod:`colonsim.run` (parallel and distributed generation), :mod:`colonsim.tune` (fitting to real
frames). The errors and the schema load with the package; everything else loads on first use, so
that ``import colonsim`` imports neither torch nor OpenGL.
"""
from __future__ import annotations

import importlib

from colonsim.data import schema
from colonsim.errors import (
    CheckpointError,
    ColonSimError,
    ConfigError,
    DatasetError,
    InputError,
    MeshError,
    RenderBackendError,
)
from colonsim.version import __version__

# name -> the module that defines it, imported when the name is first used
_LAZY = {
    "SimConfig": "colonsim.simconfig", "load_sim_config": "colonsim.simconfig", "styles": "colonsim.simconfig",
    "Colon": "colonsim.anatomy.colon", "generate_colon": "colonsim.anatomy.colon",
    "load_anatomy_config": "colonsim.anatomy.config",
    "load_colon": "colonsim.anatomy.meshio", "save_colon": "colonsim.anatomy.meshio",
    "Frame": "colonsim.render.scene", "FrameRenderer": "colonsim.render.scene",
    "render_dataset": "colonsim.run.generate",
    "open_file": "colonsim.data.h5io", "read_frame": "colonsim.data.h5io", "validate": "colonsim.data.h5io",
    "open_checked": "colonsim.data.h5read", "header_errors": "colonsim.data.h5read", "verify": "colonsim.data.h5read",
    "FrameDataset": "colonsim.data.dataset",
    "list_images": "colonsim.data.realdata", "read_image": "colonsim.data.realdata",
    "iter_frames": "colonsim.data.realdata", "detect_border_mask": "colonsim.data.realdata",
    "decode_file": "colonsim.data.realdata", "truncated_images": "colonsim.data.realdata",
    # the rule for writing outputs (colonsim.data.outputs): check, stage beside, replace when complete
    "check_output": "colonsim.data.outputs", "staged_output": "colonsim.data.outputs",
    "replace_output": "colonsim.data.outputs", "output_lock": "colonsim.data.outputs",
}

__all__ = ["__version__", "schema", "ColonSimError", "ConfigError", "InputError", "MeshError",
           "DatasetError", "CheckpointError", "RenderBackendError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'colonsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
