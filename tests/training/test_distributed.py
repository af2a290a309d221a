"""training.distributed: K spawned processes as torchrun would start them, and their errors."""
from __future__ import annotations

import pytest

from colonsim.errors import InputError
from training import distributed


def _mean_of_ranks():
    d = distributed.setup("cpu")
    try:
        values, any_flag = distributed.mean_over_ranks({"rank": float(d.rank)}, d, flag=d.rank == 1)
        return d.world, values["rank"], any_flag
    finally:
        distributed.teardown()


def _rank_one_refuses():
    if distributed.from_env().rank == 1:
        raise InputError("rank 1 refused its input")
    return "rank 0 done"


def test_single_process_helpers_are_identities():
    d = distributed.Dist()
    assert d.main and not d.enabled
    assert distributed.mean_over_ranks({"a": 2.0}, d, True) == ({"a": 2.0}, True)
    assert distributed.my_part(list(range(6)), distributed.Dist(1, 3)) == [2, 3]
    assert distributed.check_batch(8, 2, "train.batch") == 4
    with pytest.raises(InputError, match="train.batch=6 must be a multiple"):
        distributed.check_batch(6, 4, "train.batch")


@pytest.mark.timeout(300)
def test_launch_returns_rank_0_and_raises_a_ranks_error():
    assert distributed.launch(_mean_of_ranks, 2) == (2, 0.5, True)
    with pytest.raises(InputError, match="rank 1 refused its input"):
        distributed.launch(_rank_one_refuses, 2)
