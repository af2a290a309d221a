"""The refiner and the local patch discriminator (Shrivastava et al. 2017, SimGAN).

Both take (N, 3, H, W) float32 images in [-1, 1]. Both are fully convolutional: the refiner keeps
the input's resolution, the discriminator gives one realism logit per patch.
"""
from __future__ import annotations

import torch
from torch import nn


class ResBlock(nn.Module):
    """Two 3x3 convs with a ReLU between and an identity skip, then a ReLU (SimGAN's block)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, padding_mode="reflect")
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


#: Entries of the colour curve of ``output="colour_curve"``: one per 8-bit grey level.
CURVE_LEVELS = 256
#: The refiner's outputs (see :class:`Refiner`).
OUTPUTS = ("residual", "colour_curve")


def grey(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W): the mean of the three channels."""
    return x.mean(dim=1, keepdim=True)


def colour_curve(g: torch.Tensor, curve: torch.Tensor) -> torch.Tensor:
    """Grey levels (N, 1, H, W) in [-1, 1] -> colours (N, 3, H, W) in [-1, 1], read off ``curve``
    ((CURVE_LEVELS, 3), the colour at each grey level) by linear interpolation; differentiable in g."""
    level = ((g[:, 0].clamp(-1.0, 1.0) + 1.0) * 0.5 * (CURVE_LEVELS - 1)).float()
    i0 = level.floor().clamp(0, CURVE_LEVELS - 2)
    w = (level - i0).unsqueeze(-1)
    i0 = i0.long()
    c = curve.float()
    out = c[i0] * (1.0 - w) + c[i0 + 1] * w            # (N, H, W, 3)
    return out.permute(0, 3, 1, 2).to(g.dtype)


def frame_curve(g: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Grey levels (N, 1, H, W) in [-1, 1], each frame moved by its own piecewise-linear function
    of the grey level: ``knots`` (N, K) is the change at K levels evenly spaced over [-1, 1], read
    by linear interpolation between them. Returns the changed levels, clamped to [-1, 1]. Two
    pixels of one frame with the same input level get the same output level, so the change cannot
    draw a pattern of its own; it can only remap the frame's tones."""
    n, k = knots.shape
    level = ((g.clamp(-1.0, 1.0) + 1.0) * 0.5 * (k - 1)).float().reshape(n, -1)
    i0 = level.floor().clamp(0, k - 2)
    w = level - i0
    i0 = i0.long()
    kf = knots.float()
    d = torch.gather(kf, 1, i0) * (1.0 - w) + torch.gather(kf, 1, i0 + 1) * w
    return (g + d.reshape(g.shape).to(g.dtype)).clamp(-1.0, 1.0)


class Refiner(nn.Module):
    """SimGAN's refiner: a 3x3 conv to ``width`` maps, ``blocks`` residual blocks, a 1x1 conv.

    ``output="residual"``: y = clamp(x + f(x), -1, 1), with the last conv starting at zero so that
    the untrained refiner is the identity.
    ``output="colour_curve"``: the refiner changes the grey level only, g = clamp(grey(x) +
    mean_c f(x), -1, 1), and each pixel takes the colour that the target domain has at that grey
    level, y = curve(g) (the buffer ``curve``, fitted to the synthetic set by
    :func:`adapt.eval.match.fit_target` before training and saved with the weights). In the ``clean``
    renders colour is a function of the grey level; a refiner free to set colour drifts off that
    curve by a few levels, which a classifier sees.
    ``frame_knots`` K (with ``colour_curve``): one tone curve per frame instead of a change per
    pixel. The network's last feature maps, averaged over the image circle, give the change of grey
    level at K levels, and every pixel is moved by that piecewise-linear function of its level
    (:func:`frame_curve`): with K numbers per frame the refiner cannot paint pixel patterns; it
    can only choose, for each frame as a whole, the tones its content should have.
    Reflect padding keeps image edges free of a dark frame that the discriminator could key on.
    Args are stored in checkpoints to rebuild the model (see :mod:`adapt.apply`).
    """

    def __init__(self, width: int = 64, blocks: int = 4, output: str = "residual", frame_knots: int = 0):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if int(frame_knots) and not (2 <= int(frame_knots) <= CURVE_LEVELS and output == "colour_curve"):
            raise ValueError(f"frame_knots must be 0, or 2 to {CURVE_LEVELS} with output 'colour_curve'; "
                             f"got {frame_knots!r} with output {output!r}")
        self.args = {"width": int(width), "blocks": int(blocks), "output": str(output)}
        if frame_knots:
            self.args["frame_knots"] = int(frame_knots)
        self.frame_knots = int(frame_knots)
        self.output = output
        self.head = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, padding_mode="reflect"), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.tail = nn.Conv2d(width, self.frame_knots or 3, 1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        if output == "colour_curve":   # grey -> grey until set: the colour of a grey pixel
            self.register_buffer("curve", torch.linspace(-1.0, 1.0, CURVE_LEVELS)[:, None].repeat(1, 3))

    def set_curve(self, lut_uint8_levels) -> None:
        """Set the colour curve from (CURVE_LEVELS, 3) colours in 8-bit levels (the ``lut`` of
        :class:`adapt.eval.match.MatchTarget`): the colour at each grey level."""
        lut = torch.as_tensor(lut_uint8_levels, dtype=torch.float32)
        if lut.shape != (CURVE_LEVELS, 3):
            raise ValueError(f"a colour curve has shape ({CURVE_LEVELS}, 3), got {tuple(lut.shape)}")
        self.curve.copy_((lut.clamp(0.0, 255.0) / 127.5 - 1.0).to(self.curve.device))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 3, H, W) in [-1, 1]. ``mask`` ((N, 1, H, W), 1 inside the
        image circle) matters only with ``frame_knots``, whose knots are averaged inside it."""
        f = self.tail(self.body(self.head(x)))
        if self.frame_knots:
            # the mean of a 1x1 conv is the 1x1 conv of the mean: K numbers per frame
            m = torch.ones_like(x[:, :1]) if mask is None else mask.to(f.dtype)
            knots = (f * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3)).clamp_min(1.0)
            return colour_curve(frame_curve(grey(x), knots), self.curve)
        if self.output == "colour_curve":
            return colour_curve((grey(x) + grey(f).to(x.dtype)).clamp(-1.0, 1.0), self.curve)
        return (x + f.to(x.dtype)).clamp(-1.0, 1.0)


class PatchDiscriminator(nn.Module):
    """A local adversarial discriminator: one realism logit per patch (SimGAN).

    ``layers`` stride-2 3x3 convs (LeakyReLU 0.2; conv i has ``width * min(2^i, 8)`` maps), a 3x3
    conv, and a 1x1 conv to one logit: (N, 3, H, W) -> (N, 1, H / 2^layers, W / 2^layers). Every
    conv is spectrally normalized (Miyato et al. 2018). :attr:`receptive_field_px` is the side of
    the input patch that one logit sees.
    """

    def __init__(self, width: int = 32, layers: int = 3):
        super().__init__()
        self.args = {"width": int(width), "layers": int(layers)}
        sn = nn.utils.parametrizations.spectral_norm
        mods: list[nn.Module] = []
        c_in = 3
        for i in range(layers):
            c_out = width * min(2 ** i, 8)
            mods += [sn(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        mods += [sn(nn.Conv2d(c_in, c_in, 3, padding=1)), nn.LeakyReLU(0.2, inplace=True),
                 sn(nn.Conv2d(c_in, 1, 1))]
        self.net = nn.Sequential(*mods)
        self.stride = 2 ** layers
        # Each stride-2 3x3 conv adds 2 * (input stride) px; the last 3x3 adds 2 * stride.
        self.receptive_field_px = 1 + sum(2 * 2 ** i for i in range(layers)) + 2 * self.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
