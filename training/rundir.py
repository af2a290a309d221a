"""The run folder of a training run, and what ``--resume`` means; the same for every trainer.

Layout (names in :class:`RunDir`)::

    RUN/config.yaml      the run's full resolved config; rewritten at each start (with the new
                         step count or time limit after a --resume that changed them)
    RUN/last.pt          everything --resume needs: a checkpoint (training.checkpoint) of the same
                         kind as model.pt, plus the training state (step, optimizers, history, rng)
    RUN/model.pt         the artifact that evaluation and inference load (no training state)
    RUN/tb/              TensorBoard events
    RUN/snapshots/       kept checkpoints, step_NNNNNN.pt (:meth:`RunDir.snapshot`)
    RUN/loss_curve.png   the logged scalars (training.curves)

Rules, checked by :meth:`RunDir.check_start` before anything is written:

- Without ``--resume``: a folder that holds a run (a ``last.pt`` or a ``model.pt``) is refused in
  one line that suggests ``--resume`` or a new ``--out``. An empty or missing folder, or one with
  other files only, is used (created if missing).
- With ``--resume``: the run continues from ``RUN/last.pt`` with the config of ``RUN/config.yaml``.
  The config a trainer is given must equal it except in the settings named in
  :data:`MUTABLE_ON_RESUME` (the step count ``steps`` and the wall-clock limit ``time_limit_min``,
  matched by the last part of the dotted key): any other difference is refused in one line naming
  the key (:class:`colonsim.errors.ConfigError`). A folder without ``last.pt`` is refused in one line
  (there is nothing to resume; drop ``--resume``).
- A command line builds the config of a resumed run with :func:`resume_config`: ``RUN/config.yaml``,
  then the user's ``--config`` file, then ``--set`` items (and flags such as ``--steps`` given as
  ``--set`` items). So ``--resume`` alone continues the run as it was configured, ``--resume --steps
  N`` extends it, and ``--resume --set lr=...`` is refused by the check above.

A trainer does, in this order::

    run = RunDir(out)
    run.check_start(cfg, resume)          # the refusals, before any file is written
    state = load_checkpoint(run.last, KIND, VERSION) if resume else None
    run.create(cfg)                       # the folder, and config.yaml
    ... train; save_checkpoint(run.last, ...), save_checkpoint(run.model, ...),
        save_checkpoint(run.snapshot(step), ...), SummaryWriter(run.tb), plot_run(run.tb, run.loss_curve)

On resume, open the TensorBoard writer with ``purge_step=step`` so that events logged after the
last checkpoint are dropped rather than doubled. Under data-parallel training every process may call
``check_start`` (it only reads), and rank 0 alone calls ``create`` and writes files.
``depth.train.train_depth`` is a trainer written this way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

from colonsim import config as cfgmod
from colonsim.errors import ConfigError, InputError

#: The settings (the last part of their dotted key) that a resumed run may change.
MUTABLE_ON_RESUME = ("steps", "time_limit_min")

T = TypeVar("T")


class RunDir:
    """The paths of a run folder and its start rules (see the module doc)."""

    CONFIG, LAST, MODEL, TB, SNAPSHOTS, LOSS_CURVE = (
        "config.yaml", "last.pt", "model.pt", "tb", "snapshots", "loss_curve.png")

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / self.CONFIG
        self.last = self.root / self.LAST
        self.model = self.root / self.MODEL
        self.tb = self.root / self.TB
        self.snapshots = self.root / self.SNAPSHOTS
        self.loss_curve = self.root / self.LOSS_CURVE

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def snapshot(self, step: int) -> Path:
        """RUN/snapshots/step_NNNNNN.pt, a kept checkpoint of ``step`` (the folder is created)."""
        self.snapshots.mkdir(parents=True, exist_ok=True)
        return self.snapshots / f"step_{int(step):06d}.pt"

    def holds_run(self) -> bool:
        """Whether the folder holds a run: a last.pt or a model.pt."""
        return self.last.exists() or self.model.exists()

    def stored_config(self) -> dict:
        """RUN/config.yaml as a nested dict; InputError naming the file when it is missing."""
        if not self.config.is_file():
            raise InputError(f"{self.config} not found; a run folder to resume holds the config.yaml of its run")
        return cfgmod.read_yaml(self.config)

    def check_start(self, cfg: Any, resume: bool) -> None:
        """The refusals of the module doc; ``cfg`` is the config the run will train with."""
        if not resume:
            if self.holds_run():
                found = self.LAST if self.last.exists() else self.MODEL
                raise InputError(f"{self.root} already holds a run ({found}); pass --resume to continue it, "
                                 "or choose a new --out")
            return
        if not self.last.is_file():
            raise InputError(f"{self.root} holds no {self.LAST} to resume; drop --resume to start a new run there")
        check_resume_config(self.stored_config(), cfg, self.config)

    def create(self, cfg: Any) -> None:
        """Create the folder and write config.yaml (the full resolved config)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.config.with_name(self.CONFIG + ".tmp")
        tmp.write_text(cfgmod.to_yaml(cfg))
        tmp.replace(self.config)

    def paths(self) -> dict[str, str]:
        """{file name: path} of the layout, for a command's summary."""
        names = (self.CONFIG, self.LAST, self.MODEL, self.TB, self.SNAPSHOTS, self.LOSS_CURVE)
        return {n: str(self.root / n) for n in names}


def changed_keys(old: Mapping, new: Mapping, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) of every leaf that differs between two nested dicts;
    a key present in one only counts as changed (its other value is None)."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        key = f"{prefix}{k}"
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += changed_keys(a, b, key + ".")
        elif a != b or (k in old) != (k in new):
            out.append((key, a, b))
    return out


def check_resume_config(stored: Mapping, cfg: Any, where: str | Path = "config.yaml") -> None:
    """ConfigError naming the first key other than :data:`MUTABLE_ON_RESUME` in which ``cfg`` (a
    config dataclass or dict) differs from the run's stored config."""
    new = cfg if isinstance(cfg, Mapping) else cfgmod.to_dict(cfg)
    for key, a, b in changed_keys(cfgmod.to_dict(stored), new):
        if key.rsplit(".", 1)[-1] not in MUTABLE_ON_RESUME:
            raise ConfigError(key, f"--resume keeps the run's config ({where} has {a!r}, not {b!r}); only "
                              f"{' and '.join(MUTABLE_ON_RESUME)} may change: start a new --out to change it")


def resume_config(root: str | Path, cls: type[T], path: str | Path | None = None,
                  overrides: Sequence[str] = ()) -> T:
    """The config of a resumed run: RUN/config.yaml, then the user's file, then ``--set`` items."""
    return cfgmod.load(cls, [RunDir(root).stored_config()], path, overrides)
