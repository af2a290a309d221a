"""The ``anatomy`` section of the config: segments, radii, folds, wall and polyps, with its checks.

The defaults (``assets/defaults/sim/anatomy.yaml``) are anchored on the CT colon of the Edinburgh Gut
Cell Atlas (model 00020) and on Gray's Anatomy; the YAML says which number comes from where.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from colonsim.config import Range, assets_path, check_choice, check_range, load, read_yaml, sample
from colonsim.errors import ConfigError

SEGMENT_NAMES = ("rectum", "sigmoid", "descending", "splenic_flexure", "transverse", "hepatic_flexure",
                 "ascending", "caecum")  # in order along the colon, from the anus


@dataclass(frozen=True)
class SegmentValues:
    """One number per named segment (see SEGMENT_NAMES); the unit is given by the field that holds it."""
    rectum: float
    sigmoid: float
    descending: float
    splenic_flexure: float
    transverse: float
    hepatic_flexure: float
    ascending: float
    caecum: float

    def __post_init__(self):
        for name in SEGMENT_NAMES:
            check_range(name, getattr(self, name), 0.0)

    def array(self) -> np.ndarray:
        """(8,) float64 in SEGMENT_NAMES order."""
        return np.array([getattr(self, n) for n in SEGMENT_NAMES], dtype=np.float64)


@dataclass(frozen=True)
class SegmentRanges:
    """One randomizable [lo, hi] per named segment, drawn once per colon."""
    rectum: Range
    sigmoid: Range
    descending: Range
    splenic_flexure: Range
    transverse: Range
    hepatic_flexure: Range
    ascending: Range
    caecum: Range

    def __post_init__(self):
        for name in SEGMENT_NAMES:
            check_range(name, getattr(self, name), 5.0, 80.0)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """(8,) float64, one draw per segment in SEGMENT_NAMES order."""
        return np.array([sample(rng, getattr(self, n)) for n in SEGMENT_NAMES])


@dataclass(frozen=True)
class FoldConfig:
    spacing_mm: Range       # axial distance between successive folds of one sector, mm
    height_mm: Range        # reach of a fold's crest into the lumen, mm (0 = no folds)
    thickness_mm: Range     # axial width of a fold at half height, mm, drawn per fold
    irregularity: float     # 0 regular .. 1 irregular (spacing, height, crest shape jitter)
    arch_mm: float          # axial bow of the crescent-shaped crest, mm
    bulge_mm: float         # outward bulge of the haustral sac between two folds, mm (0 without folds)
    completeness: Range = (1.0, 1.0)  # fraction of its sector (between two taeniae) a fold spans, per fold
    merge_probability: float = 0.0    # chance that a fold sends a branch that joins the next fold (or splits off)

    def __post_init__(self):
        check_range("spacing_mm", self.spacing_mm, 5.0, 200.0)
        check_range("height_mm", self.height_mm, 0.0, 20.0)
        check_range("thickness_mm", self.thickness_mm, 0.5, 30.0)
        check_range("completeness", self.completeness, 0.1, 1.0)
        check_range("merge_probability", self.merge_probability, 0.0, 1.0)
        check_range("irregularity", self.irregularity, 0.0, 1.0)
        check_range("arch_mm", self.arch_mm, 0.0, 20.0)
        check_range("bulge_mm", self.bulge_mm, 0.0, 20.0)


@dataclass(frozen=True)
class PolypTypes:
    """Probabilities of the Paris morphologies of a polyp (normalized to sum 1)."""
    Ip: float = 0.0     # pedunculated: a head on a narrower stalk
    Is: float = 1.0     # sessile: a dome (polyp_height_frac of its radius)
    IIa: float = 0.0    # flat, slightly elevated: a plaque under IIA_MAX_HEIGHT_MM high

    def __post_init__(self):
        for name in PARIS_TYPES:
            check_range(f"polyp_types.{name}", getattr(self, name), 0.0, 1.0)
        if self.Ip + self.Is + self.IIa <= 0:
            raise ConfigError("polyp_types", "all three probabilities are 0; give at least one > 0")

    def array(self) -> np.ndarray:
        """(3,) probabilities in PARIS_TYPES order, summing to 1."""
        p = np.array([getattr(self, n) for n in PARIS_TYPES], np.float64)
        return p / p.sum()


PARIS_TYPES = ("Ip", "Is", "IIa")


@dataclass(frozen=True)
class AnatomyConfig:
    path: Literal["anatomical", "straight"]  # named segments in their places, or a straight tube along +z
    segments: tuple[str, ...]       # which consecutive segments to generate, in SEGMENT_NAMES order
    start_mm: float                 # start of the piece, mm of arc from the first listed segment's start
    max_length_mm: float            # length cap of the piece, mm (0 = all of the listed segments)
    segment_length_mm: SegmentValues  # centreline length of each segment, mm
    radius_mm: SegmentRanges        # wall radius between folds, mm, drawn per colon
    fold_scale: SegmentValues       # fold height multiplier per segment (0 = no folds)
    triangularity: SegmentValues    # 0 round .. 1 rounded-triangular cross-section (taeniae)
    folds: FoldConfig               # haustral folds
    taenia_depth: float             # rounded-triangle strength at triangularity 1, fraction of radius
    wall_noise: float               # low-frequency wall deformation, fraction of radius (std)
    wall_wavelength_mm: float       # typical axial wavelength of the wall deformation, mm
    bend_jitter: float              # random change of each centreline bend, fraction of its angle
    triangles: int                  # triangle budget, 20,000 .. 500,000
    polyps_per_m: float = 0.0       # sessile polyps per metre of colon (Poisson; 0 = none)
    polyp_radius_mm: Range = (3.0, 8.0)     # radius of a polyp (its base, or its sphere), mm, per polyp
    polyp_height_frac: Range = (0.6, 1.2)   # how far it stands into the lumen, fraction of its radius
    polyp_shape: str = "dome"       # dome (rises from the wall) or sphere (an icosphere set into it)
    polyp_types: PolypTypes = field(default_factory=lambda: PolypTypes())  # Paris types {Ip, Is, IIa} (dome only)

    def __post_init__(self):
        if not self.segments:
            raise ConfigError("segments", f"empty; list one or more of {list(SEGMENT_NAMES)}")
        for s in self.segments:
            check_choice("segments", s, SEGMENT_NAMES)
        idx = [SEGMENT_NAMES.index(s) for s in self.segments]
        if idx != list(range(idx[0], idx[0] + len(idx))):
            raise ConfigError("segments", f"{list(self.segments)} must be consecutive, in the order "
                              f"{list(SEGMENT_NAMES)}")
        check_range("start_mm", self.start_mm, 0.0)
        check_range("max_length_mm", self.max_length_mm, 0.0)
        if 0 < self.max_length_mm < 10:
            raise ConfigError("max_length_mm", f"{self.max_length_mm:g} mm is too short; use 0 (no cap) "
                              "or at least 10 mm")
        check_range("taenia_depth", self.taenia_depth, 0.0, 0.4)
        check_range("wall_noise", self.wall_noise, 0.0, 0.3)
        check_range("wall_wavelength_mm", self.wall_wavelength_mm, 10.0, 2000.0)
        check_range("bend_jitter", self.bend_jitter, 0.0, 1.0)
        check_range("triangles", self.triangles, 20_000, 500_000)
        check_range("polyps_per_m", self.polyps_per_m, 0.0, 100.0)
        check_range("polyp_radius_mm", self.polyp_radius_mm, 0.5, 30.0)
        check_range("polyp_height_frac", self.polyp_height_frac, 0.1, 2.0)
        check_choice("polyp_shape", self.polyp_shape, POLYP_SHAPES)
        for n in SEGMENT_NAMES:
            check_range(f"triangularity.{n}", getattr(self.triangularity, n), 0.0, 1.0)
            check_range(f"fold_scale.{n}", getattr(self.fold_scale, n), 0.0, 2.0)
        total = sum(getattr(self.segment_length_mm, s) for s in self.segments)
        if total <= 0:
            raise ConfigError("segment_length_mm", "the listed segments have zero total length")
        if self.start_mm >= total:
            raise ConfigError("start_mm", f"{self.start_mm:g} mm is beyond the end of the listed "
                              f"segments ({total:g} mm long)")


POLYP_SHAPES = ("dome", "sphere")


@dataclass(frozen=True)
class MeshConfig:
    """The root of ``colonsim mesh``'s config: keys are ``anatomy.*``."""
    anatomy: AnatomyConfig


def load_anatomy_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> AnatomyConfig:
    """The defaults (assets/defaults/sim/anatomy.yaml), then the user's YAML, then ``anatomy.key=value``."""
    defaults = [{"anatomy": read_yaml(assets_path("defaults", "sim", "anatomy.yaml"))}]
    return load(MeshConfig, defaults, path, overrides).anatomy
