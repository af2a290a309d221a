import numpy as np
import pytest
import torch

from colonsim.errors import InputError
from depth.export import export_model
from depth.networks import load_model


def test_torchscript_export_gives_the_same_output(tiny_model, tmp_path):
    r = export_model(tiny_model, tmp_path / "m.pt")
    assert r["format"] == "torchscript"
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    model, _ = load_model(tiny_model)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # another batch size
    torch.testing.assert_close(scripted(x), model(x), rtol=1e-5, atol=1e-4)


def test_onnx_export_gives_the_same_output(tiny_model, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install colonsim[export])")
    pytest.importorskip("onnx", reason="onnx is not installed (pip install colonsim[export])")
    export_model(tiny_model, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    (y,) = sess.run(None, {"rgb": x.numpy()})
    model, _ = load_model(tiny_model)
    np.testing.assert_allclose(y, model(x).detach().numpy(), rtol=1e-4, atol=1e-3)


def test_export_needs_a_known_suffix(tiny_model, tmp_path):
    with pytest.raises(InputError, match=".onnx"):
        export_model(tiny_model, tmp_path / "m.tflite")
