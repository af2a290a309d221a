"""The ``output`` section of the forward-model config: image size and how the HDF5 file is stored.

Compression choices (all readable by a plain h5py once ``import hdf5plugin`` has run, except gzip
and lzf which need nothing): ``blosc-lz4`` (fast, the default: writing rgb, depth and mask costs ~1.5 ms a
frame at 256x256), ``blosc-zstd`` and ``zstd`` (smaller files, slower), ``gzip`` (no plugin needed, slow),
``lzf`` (built into h5py), ``none``.
"""
from __future__ import annotations

from dataclasses import dataclass

from colonsim.config import check_choice, check_range
from colonsim.data import schema

COMPRESSIONS = ("blosc-lz4", "blosc-zstd", "zstd", "gzip", "lzf", "none")
DEPTH_DTYPES = ("float16", "float32")


@dataclass(frozen=True)
class OutputConfig:
    size_px: int = 256              # output image height and width, pixels (square frames)
    depth_dtype: str = "float32"    # on-disk dtype of depth (mm): float32 exact, float16 ~0.05% relative
    compression: str = "blosc-lz4"  # chunk compression, one of COMPRESSIONS (gzip when hdf5plugin is absent)
    compression_level: int = 5      # 1 (fast) .. 9 (small); ignored by lzf and none
    shard_frames: int = 64          # frames per shard file while rendering (the unit of crash recovery)
    n_meshes: int = 1               # procedural colons built for one dataset (frames pick among them)
    mesh_seed_offset: int = 1000    # colon k is built from seed (dataset seed + offset + k), so that
                                    # mesh and frame random streams never coincide
    checksum: bool = True           # a Fletcher-32 checksum on every chunk, checked on every read, so
                                    # that a damaged file fails loudly. Cost: 5 ms per 256 frames of
                                    # 128 px written (0.170 -> 0.175 s), lost in the noise of a 12 s
                                    # end-to-end render of them (2 workers, 2 loaded cores); on by default
    normals: bool = False           # also write 'normals': camera-frame unit normals (float16), from a
                                    # second render pass of the same geometry
    flow: bool = False              # also write 'flow', 'occlusion' and 'flow_valid': exact forward flow
                                    # to the next frame of the sequence (trajectory.sequence_length > 1)
    polyp_mask: bool = False        # also write 'polyp_mask': 1 where the visible surface is a polyp's, from a
                                    # second render pass of the same geometry (all 0 for a colon without polyps)

    def extra_outputs(self) -> tuple[str, ...]:
        """The optional datasets these switches turn on (names of colonsim.data.schema)."""
        return tuple(name for switch, names in schema.OUTPUTS_OF_SWITCH.items() if getattr(self, switch)
                     for name in names)

    def __post_init__(self):
        check_range("size_px", self.size_px, 8, 4096)
        check_choice("depth_dtype", self.depth_dtype, DEPTH_DTYPES)
        check_choice("compression", self.compression, COMPRESSIONS)
        check_range("compression_level", self.compression_level, 1, 9)
        check_range("shard_frames", self.shard_frames, 1, 100_000)
        check_range("n_meshes", self.n_meshes, 1, 10_000)
        check_range("mesh_seed_offset", self.mesh_seed_offset, 0, 2**31 - 1)
