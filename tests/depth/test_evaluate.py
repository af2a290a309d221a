import cv2
import numpy as np
import pytest

from depth.evaluate import evaluate
from depth.metrics import METRIC_KEYS, aggregate, compute_metrics
from depth.networks import load_model
from depth.predict import predict_depth


def test_eval_on_hdf5_matches_metrics_of_predictions(tiny_model, tiny_val_h5):
    from colonsim.data.dataset import FrameDataset

    r = evaluate(tiny_model, tiny_val_h5, align="median")
    assert r["n"] == 8 and r["align"] == "median" and set(r["metrics"]) == set(METRIC_KEYS)
    model, _ = load_model(tiny_model)
    ds = FrameDataset(tiny_val_h5)
    expect = []
    for i in range(len(ds)):
        a = ds.read(i)
        expect.append(compute_metrics(predict_depth(model, a["rgb"]), a["depth"], a["mask"], align="median"))
    assert r["metrics"]["abs_rel"] == pytest.approx(aggregate(expect)["abs_rel"])


def test_eval_on_an_interrupted_render_names_each_frame_by_its_row(tiny_model, tiny_val_h5, tmp_path):
    import h5py

    from colonsim.data import schema

    part = tmp_path / "part.h5"
    part.write_bytes(tiny_val_h5.read_bytes())
    with h5py.File(part, "r+") as f:
        f[schema.DONE][1] = 0          # an unfinished frame: skipped, and the others keep their rows
    r = evaluate(tiny_model, part)
    assert [p["name"] for p in r["per_image"]] == [f"{i:06d}" for i in (0, 2, 3, 4, 5, 6, 7)]
    full = {p["name"]: p["abs_rel"] for p in evaluate(tiny_model, tiny_val_h5)["per_image"]}
    assert all(p["abs_rel"] == pytest.approx(full[p["name"]]) for p in r["per_image"])


def test_eval_on_a_folder_with_npy_ground_truth(tiny_model, tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(30, 255, (32, 32, 3), dtype=np.uint8))
        np.save(tmp_path / f"{i}.npy", rng.uniform(10, 100, (32, 32)).astype(np.float32))
    cv2.imwrite(str(tmp_path / "no_gt.png"), np.full((32, 32, 3), 99, np.uint8))
    r = evaluate(tiny_model, tmp_path, align="lsq")
    assert r["n"] == 3 and [p["name"] for p in r["per_image"]] == ["0.png", "1.png", "2.png"]
    assert 0 < r["metrics"]["abs_rel"] < 10


def test_eval_through_a_frame_transform(tiny_model, tiny_val_h5, tmp_path):
    """The transform sees each frame as a batch with its mask, and the network sees what it returns:
    the same metrics as evaluating a copy of the data transformed beforehand."""
    import h5py

    seen = []

    def darker(rgb, mask):
        seen.append((rgb.shape, mask.shape, rgb.dtype))
        return (rgb // 2) * mask[..., None]

    r = evaluate(tiny_model, tiny_val_h5, transform=darker)
    assert len(seen) == 8 and seen[0] == ((1, 32, 32, 3), (1, 32, 32), np.uint8)
    copy = tmp_path / "darker.h5"
    copy.write_bytes(tiny_val_h5.read_bytes())
    with h5py.File(copy, "r+") as f:
        f["rgb"][...] = (f["rgb"][...] // 2) * f["mask"][...][None, ..., None]
    expect = evaluate(tiny_model, copy)
    assert [p["abs_rel"] for p in r["per_image"]] == [p["abs_rel"] for p in expect["per_image"]]
    assert r["metrics"]["abs_rel"] != evaluate(tiny_model, tiny_val_h5)["metrics"]["abs_rel"]
