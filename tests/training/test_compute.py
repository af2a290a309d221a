"""training.compute: device choice, threads, autocast and channels-last."""
from __future__ import annotations

import pytest
import torch

from colonsim.config import from_dict
from colonsim.errors import ConfigError, InputError
from training import ComputeConfig, autocast, channels_last, pick_device, set_threads


def test_device_choice():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            pick_device("cuda")


def test_config_names_the_bad_field():
    with pytest.raises(ConfigError) as e:
        from_dict(ComputeConfig, {"device": "tpu", "threads": 0, "bf16": False, "channels_last": False},
                  prefix="compute")
    assert e.value.key == "compute.device"
    with pytest.raises(ConfigError, match="compute.threads"):
        from_dict(ComputeConfig, {"device": "cpu", "threads": -1, "bf16": False, "channels_last": False},
                  prefix="compute")


def test_autocast_bf16_only_when_asked():
    lin, x = torch.nn.Linear(4, 4), torch.randn(2, 4)
    cpu = torch.device("cpu")
    with autocast(cpu, bf16=True):
        assert lin(x).dtype == torch.bfloat16
    with autocast(cpu, bf16=False):
        assert lin(x).dtype == torch.float32
    with autocast(cpu, bf16=False, fp16_cuda=True):  # float16 is for CUDA only
        assert lin(x).dtype == torch.float32


def test_channels_last_and_threads():
    x = torch.randn(2, 3, 5, 5)
    assert channels_last(x, True).is_contiguous(memory_format=torch.channels_last)
    assert channels_last(x, False) is x
    conv = channels_last(torch.nn.Conv2d(3, 4, 3), True)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    before = torch.get_num_threads()
    try:
        set_threads(0)
        assert torch.get_num_threads() == before
        set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
