"""Export of a trained depth network to TorchScript (``.pt``) or ONNX (``.onnx``).

The exported graph takes (N, 3, S, S) float32 RGB in [0, 1] at the training size S (``size_px`` of
the checkpoint; resize frames as :func:`depth.predict.predict_depth` does) and returns (N, 1, S, S)
float32 depth in mm. The batch size N is free. ONNX export uses the ``onnx`` package (and the check
uses ``onnxruntime``), optional dependencies: ``pip install colonsim[export]``.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from colonsim import staged_output
from colonsim.errors import InputError

from .networks import load_model

ONNX_OPSET = 17


def export_model(model_path: str | Path, out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Write ``out`` (.pt TorchScript or .onnx) from a depth checkpoint; returns a summary.

    An existing ``out`` is refused unless ``overwrite``, and the checkpoint itself always; the file is
    written beside ``out`` and moved onto it once complete (:func:`colonsim.staged_output`)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".pt", ".onnx"):
        raise InputError(f"--out {out} must end in .pt (TorchScript) or .onnx")
    if out.exists() and out.resolve() == Path(model_path).resolve():
        raise InputError(f"--out {out} is the --model checkpoint itself; choose another file name")
    if out.parent.is_dir():
        from colonsim import check_output
        check_output(out, overwrite=overwrite)   # before the model loads
    model, _ = load_model(model_path)
    size = int(model.size_px)
    example = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), staged_output(out, overwrite=overwrite) as tmp:
        # The trace fixes H, W = size_px (documented above); its warnings about that, and about
        # the legacy exporters being deprecated, are expected here.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        fmt = _export(model, example, tmp, suffix)
    return {"out": str(out), "format": fmt, "size_px": size, "input": f"(N, 3, {size}, {size}) float32 RGB in [0, 1]",
            "output": f"(N, 1, {size}, {size}) float32 depth mm"}


def _export(model: torch.nn.Module, example: torch.Tensor, out: Path, suffix: str) -> str:
    if suffix == ".pt":
        torch.jit.trace(model, example).save(str(out))
        return "torchscript"
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise InputError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    # The TorchScript-based exporter (dynamo=False) needs nothing beyond onnx; the batch axis is dynamic.
    torch.onnx.export(model, (example,), str(out), dynamo=False, input_names=["rgb"], output_names=["depth_mm"],
                      dynamic_axes={"rgb": {0: "n"}, "depth_mm": {0: "n"}}, opset_version=ONNX_OPSET)
    return "onnx"
