"""The forward model's config: one frozen dataclass per section, resolved from YAML.

Resolution order: ``assets/defaults/sim/<section>.yaml`` for every section, then the style preset
``assets/styles/<style>.yaml`` (a partial config), then the user's ``--config`` file, then ``--set``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from colonsim import config as cfgmod
from colonsim.anatomy.colon import AnatomyConfig
from colonsim.data.output import OutputConfig
from colonsim.errors import ConfigError
from colonsim.render.lens import LensConfig
from colonsim.render.light import LightConfig
from colonsim.render.sensor import SensorConfig
from colonsim.render.tissue import TissueConfig
from colonsim.render.trajectory import TrajectoryConfig

SECTIONS = ("anatomy", "lens", "light", "tissue", "sensor", "trajectory", "output")


@dataclass(frozen=True)
class SimConfig:
    anatomy: AnatomyConfig        # the procedural colon (ignored when a mesh file is given)
    lens: LensConfig              # camera and lens model, image circle, vignetting
    light: LightConfig            # light guides at the scope tip
    tissue: TissueConfig          # mucosa appearance, vessels, specularity
    sensor: SensorConfig          # exposure, tone, noise, blur, compression
    trajectory: TrajectoryConfig  # camera poses inside the lumen
    output: OutputConfig          # image size, depth dtype, compression of the HDF5 file
    style: str = "custom"         # the style preset this config started from (recorded, not applied)



def styles() -> list[str]:
    """Names of the style presets shipped in ``assets/styles``."""
    return sorted(p.stem for p in cfgmod.assets_path("styles").glob("*.yaml"))


def default_layers(style: str | None = None) -> list[dict]:
    layers = [{s: cfgmod.read_yaml(cfgmod.assets_path("defaults", "sim", f"{s}.yaml"))} for s in SECTIONS]
    if style is not None:
        if style not in styles():
            raise ConfigError("style", f"unknown style {style!r}; available: {styles()}")
        layers.append(cfgmod.read_yaml(cfgmod.assets_path("styles", f"{style}.yaml")))
        layers.append({"style": style})
    return layers


def load_sim_config(style: str | None = None, path: str | Path | None = None,
                    overrides: Sequence[str] = ()) -> SimConfig:
    """Resolve the full forward-model config (see module doc)."""
    return cfgmod.load(SimConfig, default_layers(style), path, overrides)
