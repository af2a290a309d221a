"""Argument helpers shared by the ``commands*`` modules (argparse only, no logic)."""
from __future__ import annotations

import argparse


def add_config_args(p: argparse.ArgumentParser) -> None:
    """``--config F.yaml`` and repeatable ``--set dotted.key=value``."""
    p.add_argument("--config", metavar="F.yaml", help="YAML config file (merged over the defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field by its dotted name, e.g. --set light.mu=2.8 (repeatable)")


def add_json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary line")
