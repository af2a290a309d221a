"""Configs as frozen dataclasses: loaded from YAML (safe loader), overridden by ``--set a.b=v``.

Every package declares its config as nested frozen dataclasses. Field validation lives in each
dataclass's ``__post_init__`` and raises :class:`ConfigError` with the field's name; the loader
prefixes the dotted path, so the user sees ``light.mu``, not ``mu``. Defaults live in YAML files under
``assets/defaults/`` and are read before the user's file and ``--set`` overrides.

Randomizable parameters are :data:`Range` fields: a number ``x`` or a pair ``[lo, hi]``; a frame
draws a value uniformly in ``[lo, hi]`` with the frame's rng (see :func:`sample`).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence, TypeVar, Union, get_args, get_origin

import numpy as np
import yaml

from colonsim.errors import ConfigError, InputError

T = TypeVar("T")

#: A randomizable scalar: ``(lo, hi)``, drawn uniformly per frame; ``lo == hi`` means fixed.
Range = tuple[float, float]

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


def assets_path(*parts: str) -> Path:
    """Path of a file shipped under ``assets/``."""
    return ASSETS_DIR.joinpath(*parts)


# ----------------------------------------------------------------------------- validation helpers


def check_range(key: str, value: float, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False) -> None:
    """Raise ConfigError naming ``key`` unless ``lo <= value <= hi`` (open bounds if asked)."""
    vals = value if isinstance(value, tuple) else (value,)
    for v in vals:
        bad = (lo is not None and (v < lo or (lo_open and v == lo))) or \
              (hi is not None and (v > hi or (hi_open and v == hi))) or (v != v)
        if bad:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            lo_s = "-inf" if lo is None else f"{lo:g}"
            hi_s = "inf" if hi is None else f"{hi:g}"
            raise ConfigError(key, f"value {_r(value)} is out of range; allowed {left}{lo_s}, {hi_s}{right}")
    if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
        raise ConfigError(key, f"range {_r(list(value))} has lo > hi")


MAX_SEED = 2**32 - 1   # seeds are stored as HDF5 integer attributes and fed to numpy's SeedSequence


def check_seed(seed: int, flag: str = "--seed") -> None:
    """Raise InputError unless ``seed`` is an integer in [0, MAX_SEED]."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"{flag} must be an integer from 0 to {MAX_SEED}, got {seed!r}")


def check_choice(key: str, value: Any, choices: Iterable[Any]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(key, f"value {_r(value)} is not one of {choices}")


def sample(rng: np.random.Generator, r: Range) -> float:
    """Draw one value of a Range field: uniform in [lo, hi]; no rng draw is skipped when lo == hi,
    so that adding randomness to one field does not shift the draws of the others."""
    u = rng.random()
    return float(r[0] + (r[1] - r[0]) * u)


# ----------------------------------------------------------------------------- conversion


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type ``tp``, or raise ConfigError naming ``key``."""
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping of fields, got {_r(value)}")
        return from_dict(tp, value, prefix=key)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except ConfigError as e:
                errors.append(e.message)
        raise ConfigError(key, f"value {_r(value)} fits none of the allowed types ({'; '.join(errors)})")
    if origin is Literal:
        if value not in args:
            raise ConfigError(key, f"value {_r(value)} is not one of {list(args)}")
        return value
    if origin is tuple:
        if tp == Range or (len(args) == 2 and args[0] is float and args[1] is float):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return (float(value), float(value))
        if not isinstance(value, (list, tuple)):
            if tp == Range or (len(args) == 2 and args[0] is float and args[1] is float):
                raise ConfigError(key, f"expected a number or a pair [lo, hi], got {_r(value)}")
            raise ConfigError(key, f"expected a list, got {_r(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(key, f"expected {len(args)} values, got {len(value)}: {_r(value)}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (list, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {_r(value)}")
        return tuple(_convert(v, args[0] if args else Any, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {_r(value)}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {_r(value)}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ConfigError(key, f"expected an integer, got {_r(value)}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {_r(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {_r(value)}")
        return value
    raise ConfigError(key, f"unsupported field type {_type_name(tp)}")


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build the dataclass ``cls`` from a nested mapping. Unknown or missing keys raise ConfigError."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for k in data:
        if k not in fields:
            full = f"{prefix}.{k}" if prefix else str(k)
            raise ConfigError(full, f"unknown key; known keys here: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        full = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], full)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(full, "missing (no default)")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        full = f"{prefix}.{e.key}" if prefix and e.key else (e.key or prefix)
        raise ConfigError(full, e.message) from None


def to_dict(cfg: Any) -> dict:
    """A plain, JSON-able nested dict of a config dataclass (tuples become lists)."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, np.generic):
            return v.item()
        return v
    return plain(cfg)


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), sort_keys=True)


def to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# ----------------------------------------------------------------------------- loading and overrides


MAX_YAML_BYTES = 1_000_000   # a config file is a few kB; this refuses a binary file or a data dump
MAX_YAML_NODES = 100_000     # values after aliases are expanded: a "billion laughs" alias bomb is refused


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping with the safe loader. Errors are InputError with the path: a missing,
    binary, non-UTF-8, over-large (:data:`MAX_YAML_BYTES`) or alias-bomb (:data:`MAX_YAML_NODES`)
    file, invalid YAML, or one that is not a mapping."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file not found: {p}")
    size = p.stat().st_size
    if size > MAX_YAML_BYTES:
        raise InputError(f"config file {p} is {size:,} bytes; a config is at most {MAX_YAML_BYTES:,}")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"config file {p} is not UTF-8 text (byte {e.start} is 0x{raw[e.start]:02x}); "
                         "expected a YAML file") from None
    if "\x00" in text:
        raise InputError(f"config file {p} is binary (it holds NUL bytes); expected a YAML file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"config file {p} is not valid YAML: {_r(str(e).splitlines()[0])}") from None
    if _too_big(data, MAX_YAML_NODES):
        raise InputError(f"config file {p} expands to more than {MAX_YAML_NODES:,} values (YAML aliases?); "
                         "a config is a small mapping of keys")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {p} must hold a mapping of keys, not {type(data).__name__}")
    return data


def _too_big(data: Any, limit: int) -> bool:
    """True if ``data`` has more than ``limit`` values counted as if its shared parts (YAML aliases)
    were copies; stops counting at the limit, so that an alias bomb costs no more than that."""
    count = 0
    stack = [data]
    while stack:
        v = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return False


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 8
_REPR.maxlevel = 3


def _r(value: Any) -> str:
    """A repr for an error message, cut short: a value may be huge (an alias bomb is 10^9 items)."""
    return _REPR.repr(value)


def deep_merge(base: dict, update: Mapping) -> dict:
    """Merge ``update`` into a copy of ``base``; nested mappings merge, anything else replaces."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_set(item: str) -> tuple[list[str], Any]:
    """Parse one ``--set dotted.key=value``; the value is read as YAML (``2.5``, ``[1, 2]``, ``true``)."""
    if "=" not in item:
        raise ConfigError(item, "--set needs key=value, for example --set light.mu=2.8")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(key, "empty key in --set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if _too_big(value, MAX_YAML_NODES):
        raise ConfigError(key, f"the value expands to more than {MAX_YAML_NODES:,} values (YAML aliases?)")
    return key.split("."), value


def apply_overrides(data: dict, overrides: Sequence[str], cls: type | None = None) -> dict:
    """Apply ``--set`` items to a nested dict. With ``cls``, keys are checked against its fields."""
    out = copy.deepcopy(data)
    for item in overrides:
        parts, value = parse_set(item)
        if cls is not None:
            _check_path(cls, parts)
        node = out
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
    return out


def _check_path(cls: type, parts: list[str]) -> None:
    tp: Any = cls
    for i, p in enumerate(parts):
        key = ".".join(parts[: i + 1])
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(key, f"'{'.'.join(parts[:i])}' has no sub-keys")
        hints = typing.get_type_hints(tp)
        if p not in hints:
            names = sorted(f.name for f in dataclasses.fields(tp))
            raise ConfigError(key, f"unknown key; known keys here: {names}")
        tp = hints[p]


def load(cls: type[T], defaults: Sequence[str | Path | Mapping] = (), path: str | Path | None = None,
         overrides: Sequence[str] = ()) -> T:
    """Resolve a config: the default YAML files (or mappings), then the user's file, then ``--set``."""
    data: dict = {}
    for d in defaults:
        data = deep_merge(data, d if isinstance(d, Mapping) else read_yaml(d))
    if path is not None:
        data = deep_merge(data, read_yaml(path))
    data = apply_overrides(data, overrides, cls)
    return from_dict(cls, data)


def replace(cfg: T, overrides: Sequence[str]) -> T:
    """A copy of ``cfg`` with ``--set``-style overrides applied and validated."""
    return from_dict(type(cfg), apply_overrides(to_dict(cfg), overrides, type(cfg)))
