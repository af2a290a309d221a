"""The adaptation score: a classifier tells the two tiny domains apart; an identity refiner changes
nothing (self_reg_l1 = 0 and the same accuracy on raw and "refined" frames)."""
import json
import shutil

import cv2
import numpy as np

import cli
from adapt.score import inscribed_square, score


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
                   "--synthetic", str(synthetic_h5), "--size", "16", "--steps", "5", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"acc_raw", "acc_refined", "self_reg_l1"} <= set(out)
