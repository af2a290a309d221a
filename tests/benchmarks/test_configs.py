"""benchmarks/configs/: every config a benchmark reads loads and means something."""
from __future__ import annotations


def test_benchmark_configs_load_and_differ_from_the_defaults():
    """Every config under benchmarks/configs/ is a render config that loads over the clean style,
    or an adapt config (a top-level ``refiner`` key) that loads over adapt's defaults; a misspelt
    key or a value out of range would fail here, not 20 minutes into a benchmark. The v6 adapt
    target's exposure settings reach the resolved config."""
    from pathlib import Path

    from adapt.config import load_adapt_config
    from colonsim.config import read_yaml
    from colonsim.simconfig import load_sim_config

    configs = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "configs").glob("*.yaml"))
    assert {p.name for p in configs} >= {"adapt_target.yaml", "adapt_target_v5.yaml", "adapt_tones.yaml"}
    clean = load_sim_config("clean")
    for p in configs:
        if "refiner" in read_yaml(p):
            assert load_adapt_config(p) != load_adapt_config(), p
        else:
            assert load_sim_config("clean", p) != clean, p
    v6 = load_sim_config("clean", configs[[p.name for p in configs].index("adapt_target.yaml")])
    assert v6.sensor.auto_gain_percentile == 99.5 and clean.sensor.auto_gain_percentile == 60.0
