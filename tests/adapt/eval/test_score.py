"""The adaptation score: a classifier tells the two tiny domains apart; an identity refiner changes
nothing (self_reg_l1 = 0 and the same accuracy on raw and "refined" frames)."""
import json
import shutil

import cv2
import numpy as np
import torch

import cli
from adapt.data import inscribed_square, to_tensor
from adapt.eval.classifier import DomainClassifier, fold, recalibrate_batchnorm, train_and_test
from adapt.eval.score import _mean_logits, examples_grid, score, separating_cues, structure_floor, structure_view


def test_inscribed_square_excludes_border():
    rgb = np.zeros((40, 50, 3), np.uint8)
    mask = np.zeros((40, 50), np.uint8)
    cv2.circle(mask, (25, 20), 18, 1, -1)
    rgb[mask == 1] = 200
    sq = inscribed_square(rgb, mask, 16)
    assert sq.shape == (16, 16, 3) and (sq == 200).all()


def test_identity_refinement_scores_like_raw(tmp_path, real_dir, synthetic_h5):
    same = tmp_path / "same"
    shutil.copytree(real_dir, same)
    r = score(real_dir, same, synthetic_h5, size_px=24, steps=40, batch_size=8)
    assert r["self_reg_l1"] == 0.0
    assert r["acc_raw"] == r["acc_refined"]
    assert r["acc_raw"] >= 0.9  # orange noise vs smooth pink shading: easy to tell apart


def test_score_cli_json(tmp_path, real_dir, synthetic_h5, capsys):
    same = tmp_path / "same"
    shutil.copytree(real_dir, same)
    rc = cli.main(["adapt", "score", "--real", str(real_dir), "--refined", str(same),
                   "--synthetic", str(synthetic_h5), "--size", "16", "--train-steps", "5", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"acc_raw", "acc_refined", "self_reg_l1"} <= set(out)


def _blob_squares(n: int, size: int, seed: int, colour, gain: float, offset: float, shape: str) -> np.ndarray:
    """(n, size, size, 3) uint8 squares: a dark disc (the lumen; ``shape='disc'``) or a dark band
    (a fold; ``'band'``) at a random place on a bright wall, drawn in ``colour`` with a gain and
    offset."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        grey = np.full((size, size), 0.8, np.float32)
        cx, cy = (int(v) for v in rng.integers(size // 6, 5 * size // 6, size=2))
        if shape == "disc":
            cv2.circle(grey, (cx, cy), size // 5, 0.15, -1)
        else:
            cv2.line(grey, (0, cy), (size - 1, cy + int(rng.integers(-size // 4, size // 4))), 0.15, 2)
        out[i] = np.clip((grey[..., None] * gain + offset) * np.asarray(colour, np.float32), 0, 255)
    return out


def test_structure_view_ignores_colour_brightness_and_contrast():
    a = _blob_squares(4, 24, 0, (250, 140, 60), 1.0, 0.0, "disc")
    b = _blob_squares(4, 24, 0, (160, 160, 200), 0.6, 0.2, "disc")   # same layout, other look
    va, vb = structure_view(a), structure_view(b)
    assert va.shape == a.shape and (va[..., 0] == va[..., 2]).all()
    assert np.abs(va.astype(int) - vb.astype(int)).max() <= 4   # rounding to uint8
    assert np.abs(va.astype(int) - structure_view(np.roll(a, 6, axis=2)).astype(int)).max() > 50  # layout counts


def test_structure_floor_separates_layout_not_appearance():
    real = _blob_squares(32, 24, 1, (250, 140, 60), 1.0, 0.0, "disc")
    look = _blob_squares(32, 24, 2, (160, 160, 200), 0.6, 0.2, "disc")   # other appearance only
    place = _blob_squares(32, 24, 3, (250, 140, 60), 1.0, 0.0, "band")       # other layout only
    assert train_and_test(real, look, 60, 16, 0) >= 0.9          # the raw classifier sees the look
    assert structure_floor(real, look, 60, 16, 0) <= 0.7          # the floor does not
    assert structure_floor(real, place, 60, 16, 0) >= 0.85        # but it sees where the lumen is


def test_score_floor_cli(tmp_path, real_dir, synthetic_h5, capsys):
    rc = cli.main(["adapt", "score", "--real", str(real_dir), "--refined", str(real_dir),
                   "--synthetic", str(synthetic_h5), "--size", "16", "--train-steps", "5", "--floor", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= out["acc_structure"] <= 1.0
    rc = cli.main(["adapt", "score", "--real", str(real_dir), "--refined", str(real_dir),
                   "--synthetic", str(synthetic_h5), "--floor-sigma", "-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--floor-sigma" in err[0]


def test_separating_cues_name_the_property_that_differs():
    real = _blob_squares(32, 24, 1, (250, 140, 60), 1.0, 0.0, "disc")
    dim = _blob_squares(32, 24, 2, (250, 140, 60), 0.55, 0.1, "disc")       # exposure only
    # a fine texture (a 2-px checkerboard, random phase): the self-regularization's low-pass removes it
    grain = _blob_squares(32, 24, 3, (250, 140, 60), 1.0, 0.0, "disc").astype(np.float32)
    yy, xx = np.mgrid[:24, :24]
    phase = np.random.default_rng(4).integers(0, 2, size=32)
    grain += 30.0 * (((yy + xx)[None] + phase[:, None, None]) % 2 * 2 - 1)[..., None]
    grain = np.clip(grain, 0, 255)
    by_exposure = separating_cues(real, dim, 60, 16, 0)
    by_grain = separating_cues(real, grain.astype(np.uint8), 60, 16, 0)
    assert set(by_exposure) == {"layout", "+brightness", "+colour", "+texture", "everything"}
    assert by_exposure["layout"] <= 0.7 and by_exposure["+texture"] <= 0.7
    assert by_exposure["+brightness"] >= 0.9 and by_exposure["everything"] >= 0.9
    assert by_grain["layout"] <= 0.7 and by_grain["+brightness"] <= 0.75
    assert by_grain["+texture"] >= 0.9


def test_score_cues_cli(tmp_path, real_dir, synthetic_h5, capsys):
    rc = cli.main(["adapt", "score", "--real", str(real_dir), "--refined", str(real_dir),
                   "--synthetic", str(synthetic_h5), "--size", "16", "--train-steps", "5", "--cues", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["cues_raw"] == out["cues_refined"]          # an identity refinement: the same views
    assert set(out["cues_raw"]) == {"layout", "+brightness", "+colour", "+texture", "everything"}


def test_score_repeats_average_the_classifier_seeds(tmp_path, real_dir, synthetic_h5, capsys):
    """--repeats N trains N classifiers (seeds seed..seed+N-1): each seed's accuracy is the one a
    single-seed score gives, and the reported accuracy is their mean."""
    same = tmp_path / "same"
    shutil.copytree(real_dir, same)
    r = score(real_dir, same, synthetic_h5, size_px=16, steps=6, batch_size=8, seed=3, repeats=2)
    singles = [score(real_dir, same, synthetic_h5, size_px=16, steps=6, batch_size=8, seed=s)["acc_refined"]
               for s in (3, 4)]
    assert r["acc_refined_seeds"] == singles
    assert abs(r["acc_refined"] - float(np.mean(singles))) <= 1e-4   # each single is rounded to 4 places
    assert len(r["acc_raw_seeds"]) == 2
    rc = cli.main(["adapt", "score", "--real", str(real_dir), "--refined", str(same),
                   "--synthetic", str(synthetic_h5), "--repeats", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--repeats" in err[0]


def test_odd_seeds_test_the_other_half():
    """Two seeds cross-fit: each frame is tested once, never by a classifier that trained on it,
    and neighbouring frames (near-duplicates in a video) stay on one side."""
    for n in (2, 9, 90, 400):
        (tr0, te0), (tr1, te1) = fold(n, 0), fold(n, 1)
        assert set(te0) | set(te1) == set(range(n)) and not set(te0) & set(te1)
        assert not set(tr0) & set(te0) and not set(tr1) & set(te1)
        assert (np.sort(tr1) == np.sort(te0)).all() and fold(n, 2)[1].tolist() == te0.tolist()
    assert fold(90, 0)[1][:2].tolist() == [8, 9]   # blocks of 8 neighbours: 0-7 train, 8-15 test


def test_recalibrated_batchnorm_tests_as_it_trained():
    """Stale running statistics (as fast Adam steps leave them) shift every test logit alike, so a
    classifier can call every frame one class; recalibrated, eval mode gives the logits that train
    mode gives on the same balanced frames."""
    real = to_tensor(_blob_squares(16, 24, 1, (250, 140, 60), 1.0, 0.0, "disc"))
    synth = to_tensor(_blob_squares(24, 24, 2, (160, 160, 200), 0.6, 0.2, "band"))
    torch.manual_seed(0)
    model = DomainClassifier()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.running_mean.fill_(5.0)
        m.running_var.fill_(0.01)
    batch = torch.cat([real, synth[np.linspace(0, 23, 16).round().astype(int)]])
    model.eval()
    with torch.no_grad():
        stale = model(batch)
    recalibrate_batchnorm(model, real, synth)
    assert not model.training and all(m.momentum == 0.1 for m in bns)
    with torch.no_grad():
        tested = model(batch)
        model.train()
        trained = model(batch)
    # within the unbiased-variance factor n / (n - 1) of the small deep layers
    assert float((tested - trained).abs().max()) <= 0.02 * float(trained.abs().max())
    assert float(stale.std()) < 0.01 * float(trained.std())   # stale: one logit for every frame


def test_examples_grid_orders_frames_by_logit():
    """Each group's first row holds its most real-called frames in falling order of logit, its
    second the most synthetic-called; frames no classifier tested (nan) are left out."""
    squares = np.stack([np.full((8, 8, 3), 20 * i, np.uint8) for i in range(6)])   # frame i is grey 20 i
    logits = np.array([0.5, -2.0, np.nan, 3.0, -0.5, 1.0])
    img = examples_grid([("g", squares, [str(i) for i in range(6)], logits)], per_row=3, tile_px=32)
    assert img.shape == (2 * (22 + 32), 3 * 32, 3)

    def tile(row, j):   # a pixel above the label strip of tile j in picture row 0 or 1
        return int(img[22 + row * (22 + 32) + 4, j * 32 + 16, 0])

    assert [tile(0, j) for j in range(3)] == [60, 100, 0]    # logits 3.0, 1.0, 0.5
    assert [tile(1, j) for j in range(3)] == [20, 80, 0]     # logits -2.0, -0.5, 0.5


def test_mean_logits_average_over_the_seeds_that_tested_a_frame():
    m = _mean_logits(4, [(np.array([0, 1]), np.array([1.0, -1.0])), (np.array([1, 2]), np.array([3.0, 2.0]))])
    assert m[0] == 1.0 and m[1] == 1.0 and m[2] == 2.0 and np.isnan(m[3])


def test_score_examples_cli(tmp_path, real_dir, synthetic_h5, capsys):
    """--examples writes the picture of the refined-versus-synthetic classifiers' decisions; a path
    that is not a picture, or in a missing folder, gets one line and exit 2 before any training."""
    same = tmp_path / "same"
    shutil.copytree(real_dir, same)
    grid = tmp_path / "examples.png"
    rc = cli.main(["adapt", "score", "--real", str(real_dir), "--refined", str(same), "--synthetic",
                   str(synthetic_h5), "--size", "16", "--train-steps", "5", "--repeats", "2", "--examples", str(grid),
                   "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["examples"] == str(grid)
    img = cv2.imread(str(grid))
    assert img.shape == (4 * (22 + 96), 8 * 96, 3)
    assert img[22:22 + 96, :6 * 96].std() > 0            # six real frames, each tested by one of two seeds
    for bad, needle in ((tmp_path / "x.txt", ".png or .jpg"), (tmp_path / "no" / "x.png", "does not exist")):
        rc = cli.main(["adapt", "score", "--real", str(real_dir), "--refined", str(same), "--synthetic",
                       str(synthetic_h5), "--examples", str(bad)])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and needle in err[0] and not bad.exists()
