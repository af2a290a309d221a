"""The HDF5 schema (version 1): the single source of truth for dataset names, dtypes and attributes.

Readers and writers take every name from here, never from string literals.

One file holds N frames of one size (H, W):

=============  ==================  =============  =====================================================
name           dtype               shape          meaning
=============  ==================  =============  =====================================================
rgb            uint8               (N, H, W, 3)   frame after the sensor model, sRGB
depth          float16 | float32   (N, H, W)      z-depth along the optical axis, mm; 0 = no surface
mask           uint8               (H, W) or      1 inside the lens's image circle, 0 outside
                                   (N, H, W)
pose           float32             (N, 4, 4)      camera-to-world, mm, OpenGL axes (looks along -z)
intrinsics     float32             (N, 3, 3)      pinhole matrix of the frame
normals        int8 | float16      (N, H, W, 3)   optional (output.normals): camera-frame unit normals
                                                  (OpenGL axes, facing the camera; 0 = no surface;
                                                  int8: x127)
flow           float32             (N, H, W, 2)   optional (output.flow): forward optical flow to the
                                                  next frame of the sequence, output px (dx right, dy
                                                  down), through the lens model; 0 where not valid
occlusion      uint8               (N, H, W)      optional (output.flow): 1 where the flow is valid but
                                                  the next frame does not see that surface point
flow_valid     uint8               (N, H, W)      optional (output.flow): 1 where the flow is defined
                                                  (a surface, and a next frame in the sequence)
polyp_mask     uint8               (N, H, W)      optional (output.polyp_mask): 1 where the visible
                                                  surface is a polyp's (through the lens, nearest)
params/<name>  float32 | int32     (N,)           every per-frame sampled parameter
done           uint8               (N,)           1 once frame i is fully written (crash safety)
=============  ==================  =============  =====================================================
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMA_VERSION = 1

RGB = "rgb"
DEPTH = "depth"
MASK = "mask"
POSE = "pose"
INTRINSICS = "intrinsics"
NORMALS = "normals"
FLOW = "flow"
OCCLUSION = "occlusion"
FLOW_VALID = "flow_valid"
POLYP_MASK = "polyp_mask"
PARAMS = "params"
DONE = "done"

# Root attributes.
ATTR_SCHEMA_VERSION = "schema_version"
ATTR_UNITS = "units"              # "mm"
ATTR_DEPTH_KIND = "depth_kind"    # "z": depth along the optical axis, not along the ray
ATTR_SOFTWARE = "software"        # "colonsim", to tell our files from foreign HDF5
ATTR_SOFTWARE_VERSION = "software_version"
ATTR_CONFIG = "config"            # the full resolved generation config, JSON
ATTR_SEED = "seed"
ATTR_N_FRAMES = "n_frames"        # N, the number of frames the file was created for
ATTR_HEIGHT = "height"
ATTR_WIDTH = "width"
ATTR_COMPLETE = "complete"        # True once every frame is written and the file closed cleanly
ATTR_CAMERA = "camera"            # JSON of the lens model's full parameters

UNITS = "mm"
DEPTH_KIND = "z"
SOFTWARE = "colonsim"


@dataclass(frozen=True)
class Field:
    """One dataset of the schema. ``frame_shape`` is the per-frame shape with H, W as 'H', 'W'."""
    name: str
    dtypes: tuple[str, ...]
    frame_shape: tuple
    required: bool
    doc: str

    def shape(self, n: int, h: int, w: int) -> tuple[int, ...]:
        sub = {"H": h, "W": w}
        return (n,) + tuple(sub.get(s, s) for s in self.frame_shape)


FIELDS: dict[str, Field] = {
    RGB: Field(RGB, ("uint8",), ("H", "W", 3), True, "frame after the sensor model, sRGB"),
    DEPTH: Field(DEPTH, ("float16", "float32"), ("H", "W"), True,
                 "z-depth along the optical axis, mm; 0 where no surface or outside the mask"),
    MASK: Field(MASK, ("uint8",), ("H", "W"), True, "1 inside the lens's image circle"),
    POSE: Field(POSE, ("float32",), (4, 4), True, "camera-to-world, mm, OpenGL axes"),
    INTRINSICS: Field(INTRINSICS, ("float32",), (3, 3), True, "pinhole matrix of the frame"),
    NORMALS: Field(NORMALS, ("int8", "float16"), ("H", "W", 3), False, "camera-frame unit normals"),
    FLOW: Field(FLOW, ("float32",), ("H", "W", 2), False,
                "forward flow to the next frame of the sequence, output px (x right, y down)"),
    OCCLUSION: Field(OCCLUSION, ("uint8",), ("H", "W"), False,
                     "1 where the next frame does not see the surface point of the pixel"),
    FLOW_VALID: Field(FLOW_VALID, ("uint8",), ("H", "W"), False, "1 where the flow is defined"),
    POLYP_MASK: Field(POLYP_MASK, ("uint8",), ("H", "W"), False,
                      "1 where the visible surface is a polyp's"),
    DONE: Field(DONE, ("uint8",), (), True, "1 once frame i is fully written"),
}

PARAM_DTYPES = ("float32", "int32")

#: The optional per-frame image datasets, with the dtype the writer uses, by the config switch
#: (``output.normals``, ``output.flow``, ``output.polyp_mask``) that turns them on.
OPTIONAL_OUTPUTS = {NORMALS: "float16", FLOW: "float32", OCCLUSION: "uint8", FLOW_VALID: "uint8",
                    POLYP_MASK: "uint8"}
OUTPUTS_OF_SWITCH = {"normals": (NORMALS,), "flow": (FLOW, OCCLUSION, FLOW_VALID), "polyp_mask": (POLYP_MASK,)}


def check_dtype(name: str, dtype: np.dtype) -> bool:
    """True if ``dtype`` is allowed for dataset ``name``."""
    if name.startswith(PARAMS + "/"):
        return np.dtype(dtype).name in PARAM_DTYPES
    return np.dtype(dtype).name in FIELDS[name].dtypes
