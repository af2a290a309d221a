"""training.checkpoint: one format, an exact round trip, and one-line errors for every bad file."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from colonsim.config import to_dict
from colonsim.errors import CheckpointError
from training import load_checkpoint, load_model, save_checkpoint

from .conftest import TinyNet

KIND, VERSION = "colonsim.test", 2


def _save(path, net, cfg, **extra):
    return save_checkpoint(path, kind=KIND, format_version=VERSION, model_args={"width": 4, "classes": 3},
                           model=net, config=cfg, **extra)


def test_round_trip_is_exact_to_the_bit(tmp_path, trained_net, tiny_cfg):
    path = _save(tmp_path / "run" / "last.pt", trained_net, tiny_cfg, step=7, best=float("inf"),
                 optimizer=trained_net.opt.state_dict(), history={"loss": [0.5, 0.25]})
    model, meta = load_model(path, KIND, VERSION, TinyNet)
    a, b = trained_net.state_dict(), model.state_dict()
    assert a.keys() == b.keys()
    for k in a:  # weights and buffers (batch norm's running stats and counter), dtype and bits
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    trained_net.eval()
    assert torch.equal(trained_net(x), model(x))
    assert not model.training
    assert meta["config"] == to_dict(tiny_cfg) and meta["step"] == 7 and meta["best"] == float("inf")
    assert meta["history"] == {"loss": [0.5, 0.25]} and "model" not in meta and "optimizer" not in meta
    ckpt = load_checkpoint(path, KIND, VERSION)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    opt.load_state_dict(ckpt["optimizer"])  # the training state comes back whole
    for s0, s1 in zip(trained_net.opt.state_dict()["state"].values(), opt.state_dict()["state"].values()):
        assert all(torch.equal(s0[k], s1[k]) for k in ("exp_avg", "exp_avg_sq"))
    assert not list(path.parent.glob("*.tmp"))


def test_a_failed_save_keeps_the_previous_file(tmp_path, trained_net, tiny_cfg):
    path = _save(tmp_path / "model.pt", trained_net, tiny_cfg, step=1)
    with pytest.raises(Exception):
        _save(path, trained_net, tiny_cfg, step=2, bad=lambda: 0)  # a lambda cannot be saved
    assert load_checkpoint(path, KIND, VERSION)["step"] == 1
    assert not list(tmp_path.glob("*.tmp"))


class _Foo:
    pass


def _bad_files(tmp, net, cfg):
    good = _save(tmp / "good.pt", net, cfg)
    raw = good.read_bytes()
    files = {"missing": tmp / "missing.pt", "empty": tmp / "empty.pt", "truncated": tmp / "truncated.pt",
             "junk": tmp / "junk.pt"}
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(raw[: len(raw) // 2])
    files["junk"].write_bytes(b"not a checkpoint\n" * 20)
    torch.save({"kind": KIND, "format_version": VERSION, "x": _Foo()}, tmp / "pickled.pt")
    torch.save({"kind": KIND, "format_version": VERSION, "x": np.arange(3)}, tmp / "numpy.pt")
    torch.save([torch.zeros(2)], tmp / "list.pt")
    torch.save({"model": net.state_dict()}, tmp / "untagged.pt")
    save_checkpoint(tmp / "kind.pt", kind="colonsim.other", format_version=VERSION, model_args={}, model=net, config={})
    save_checkpoint(tmp / "version.pt", kind=KIND, format_version=VERSION + 1, model_args={}, model=net, config={})
    torch.save({"kind": KIND, "format_version": VERSION, "model": {}, "config": {}}, tmp / "no_args.pt")
    for name in ("pickled", "numpy", "list", "untagged", "kind", "version", "no_args"):
        files[name] = tmp / f"{name}.pt"
    for name, args in (("unknown_arg", {"depth": 3}), ("bad_arg", {"width": 0}), ("misfit", {"width": 8})):
        files[name] = save_checkpoint(tmp / f"{name}.pt", kind=KIND, format_version=VERSION, model_args=args,
                                      model=net, config={})
    return files


#: each bad file, and what its message must say
BAD = {"missing": "not found", "empty": "empty (0 bytes)", "truncated": "truncated or corrupt", "junk": "corrupt",
       "pickled": "pickled Python object (tests.training.test_checkpoint._Foo)", "numpy": "pickled Python object",
       "list": "no 'kind' tag", "untagged": "no 'kind' tag", "kind": "'colonsim.other' checkpoint",
       "version": "format version 3", "no_args": "lacks model_args", "unknown_arg": "'depth'",
       "bad_arg": "width must be >= 1", "misfit": "size mismatch for conv.weight"}


@pytest.mark.parametrize("case", BAD)
def test_every_bad_checkpoint_is_one_line_naming_the_file(tmp_path, trained_net, tiny_cfg, case):
    path = _bad_files(tmp_path, trained_net, tiny_cfg)[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError) as e:
            load_model(path, KIND, VERSION, TinyNet)
    msg = str(e.value)
    assert "\n" not in msg and "\x1b" not in msg and str(path) in msg and BAD[case] in msg, msg
    assert "weights_only" not in msg and "trust" not in msg, msg  # never torch's advice to unpickle
    assert not caught, [str(w.message) for w in caught]
    assert e.value.__context__ is None or e.value.__suppress_context__  # no chained torch traceback


def test_a_pickle_payload_is_never_executed(tmp_path):
    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"kind": KIND, "format_version": VERSION, "x": Boom()}))
    with pytest.raises(CheckpointError, match="pickled Python object|not a readable"):
        load_checkpoint(path, KIND, VERSION)
    assert not (tmp_path / "pwned").exists()
