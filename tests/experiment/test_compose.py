"""experiment.compose: adapt's refiner as depth eval's frame transform, and `depth eval --refiner`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from experiment.compose import refiner_artifact, refiner_transform


@pytest.fixture(scope="module")
def refiner_pt(tmp_path_factory):
    """A refiner with random (not identity) weights, written as adapt writes refiner.pt."""
    from adapt.checkpoint import REFINER_KIND, save_checkpoint
    from adapt.networks import Refiner

    args = {"width": 8, "blocks": 1, "output": "residual"}
    torch.manual_seed(0)
    model = Refiner(**args)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("adapt_run") / "refiner.pt"
    save_checkpoint({"kind": REFINER_KIND, "model_args": args, "state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def depth_model(tmp_path_factory):
    from depth import networks

    args = dict(base_width=8, levels=2, max_width=16, convs_per_level=1, norm="group", size_px=32)
    torch.manual_seed(1)
    model = networks.build_model(args)
    torch.nn.init.normal_(model.head.weight, std=0.5)
    return networks.save_checkpoint(tmp_path_factory.mktemp("depth_run") / "model.pt", model, args, config={})


def test_the_transform_is_adapts_refinement(refiner_pt, tiny_h5):
    from adapt.apply import load_refiner, refine_images
    from colonsim.data.dataset import FrameDataset

    ds = FrameDataset(tiny_h5)
    frames = [ds.read(i) for i in range(3)]
    rgb = np.stack([f["rgb"] for f in frames])
    mask = np.stack([np.broadcast_to(f["mask"], f["rgb"].shape[:2]) for f in frames])
    out = refiner_transform(refiner_pt)(rgb, mask)
    assert out.shape == rgb.shape and out.dtype == np.uint8 and not np.array_equal(out, rgb)
    assert np.array_equal(out, refine_images(load_refiner(refiner_pt)[0], rgb, mask))


def test_depth_eval_refiner_flag_composes_the_refiner(run_cli, refiner_pt, depth_model, tiny_h5):
    from depth.evaluate import evaluate

    r = run_cli("depth", "eval", "--model", depth_model, "--data", tiny_h5, "--refiner", refiner_pt, "--json")
    assert r.code == 0, r.err
    got = json.loads(r.out)["metrics"]
    expect = evaluate(depth_model, tiny_h5, transform=refiner_transform(refiner_pt))["metrics"]
    plain = evaluate(depth_model, tiny_h5)["metrics"]
    assert got == pytest.approx(expect) and got["abs_rel"] != pytest.approx(plain["abs_rel"])


def test_a_bad_refiner_is_one_line(run_cli, depth_model, tiny_h5, tmp_path):
    r = run_cli("depth", "eval", "--model", depth_model, "--data", tiny_h5, "--refiner", depth_model)
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 1 and str(depth_model) in lines[0], r.err


def test_refiner_artifact_prefers_model_pt(tmp_path):
    assert refiner_artifact(tmp_path) == tmp_path / "refiner.pt"
    (tmp_path / "model.pt").write_bytes(b"x")
    assert refiner_artifact(tmp_path) == tmp_path / "model.pt"
