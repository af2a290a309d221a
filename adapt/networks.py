"""The refiner and the local patch discriminator (Shrivastava et al. 2017, SimGAN).

Both take (N, 3, H, W) float32 images in [-1, 1]. Both are fully convolutional: the refiner keeps
the input's resolution, the discriminator gives one realism logit per patch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
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


def keep_tones(g: torch.Tensor, g_in: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Grey levels (N, 1, H, W) ``g`` given, by rank, the levels of ``g_in`` (same shape): each
    frame's output has exactly the grey-level histogram of its input, in the spatial order of
    ``g``. With ``mask`` ((N, 1, H, W), 1 inside the image circle) the exchange is among the
    pixels inside only, and those outside keep ``g_in``: the black border would otherwise lend its
    levels to whichever inside pixels the refiner darkens most. The gradient passes straight
    through to ``g`` (Bengio, Leonard, Courville 2013)."""
    n = g.shape[0]
    flat, ref = g.reshape(n, -1), g_in.reshape(n, -1).to(g.dtype)
    # Pixels that tie in g (a flat or saturated patch) keep their input's order: a tie broken by
    # memory order would lay the input's levels over the patch in raster order, as streaks.
    key = flat.detach().double() + 1e-9 * ref.double()
    inside = torch.ones_like(flat, dtype=torch.bool) if mask is None else mask.reshape(n, -1) > 0.5
    # outside pixels sort first, among themselves, in both orders, and keep g_in
    key = torch.where(inside, key, torch.full_like(key, -1e9))
    levels = torch.sort(torch.where(inside, ref, torch.full_like(ref, -1e9)), dim=1).values
    target = torch.where(inside, torch.empty_like(flat).scatter_(1, torch.argsort(key, dim=1), levels), ref)
    # target + (g - g) rather than g + (target - g): exact whatever the size of g
    return (target + (flat - flat.detach())).reshape(g.shape)


def _centred(d: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(N, 1, H, W) less each frame's mean (over the pixels inside ``mask``, where given)."""
    if mask is None:
        return d - d.mean(dim=(2, 3), keepdim=True)
    m = mask.to(d.dtype)
    return d - (d * m).sum(dim=(2, 3), keepdim=True) / m.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)


def _smooth(d: torch.Tensor, mask: torch.Tensor | None, block_px: int) -> torch.Tensor:
    """(N, 1, H, W) averaged over blocks of ``block_px`` (pixels inside ``mask`` only, where given;
    a block with none inside is 0) and interpolated back to (H, W), bilinear: a change that varies
    smoothly. 0 returns ``d``."""
    if block_px <= 0:
        return d
    h, w = d.shape[-2:]
    m = torch.ones_like(d) if mask is None else mask.to(d.dtype)
    num = F.avg_pool2d(d * m, block_px, ceil_mode=True)
    den = F.avg_pool2d(m, block_px, ceil_mode=True)
    coarse = num / den.clamp_min(1e-6)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)


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


def inner_mask(mask: torch.Tensor, rim_frac: float) -> torch.Tensor:
    """(N, 1, H, W) float: ``mask`` less its rim, the pixels within ``rim_frac`` of the short side of
    each frame's mask box from the outside (or the image edge), by Chebyshev distance (a square
    structuring element, applied as two separable max-pools). 0 returns ``mask``."""
    if rim_frac <= 0:
        return mask
    out = []
    for m in mask.float():
        rows, cols = m[0].amax(dim=1) > 0.5, m[0].amax(dim=0) > 0.5
        short = min(int(rows.sum()), int(cols.sum()))
        k = int(round(rim_frac * short))
        if k <= 0:
            out.append(m)
            continue
        # the image edge counts as outside: pad with 1 (outside) before pooling
        outside = F.pad(1.0 - m[None], (k, k, k, k), value=1.0)
        outside = F.max_pool2d(outside, (1, 2 * k + 1), stride=1)
        outside = F.max_pool2d(outside, (2 * k + 1, 1), stride=1)
        out.append(1.0 - outside[0])
    return torch.stack(out).to(mask.dtype)


class Refiner(nn.Module):
    """SimGAN's refiner: a 3x3 conv to ``width`` maps, ``blocks`` residual blocks, a 1x1 conv to 3.

    ``output="residual"``: y = clamp(x + f(x), -1, 1), with the last conv starting at zero so that
    the untrained refiner is the identity. ``output="tanh"``: y = tanh(f(x)).
    ``output="colour_curve"``: the refiner changes the grey level only, g = clamp(grey(x) +
    mean_c f(x), -1, 1), and each pixel takes the colour that the target domain has at that grey
    level, y = curve(g) (the buffer ``curve``, fitted to the synthetic set by
    :func:`adapt.match.fit_target` before training and saved with the weights). In the ``clean``
    renders colour is a function of the grey level; a refiner free to set colour drifts off that
    curve by a few levels, which a classifier sees (benchmarks/RESULTS.md).
    ``tones="keep"`` (with ``colour_curve`` only): the refined grey levels set only the order of a
    frame's pixels, which take the input frame's own grey levels by rank (:func:`keep_tones`), so
    every refined frame has its input's grey-level histogram exactly. ``rim_frac`` (with ``keep``)
    leaves the pixels within that fraction of the image circle's box from its border as they were,
    and out of the exchange (:func:`inner_mask`): no discriminator judges a patch that overlaps the
    border, so a refiner free to trade levels with the rim hides there the levels it does not want
    in the frame (benchmarks/RESULTS.md). On frames that ``adapt match``
    gave a synthetic frame's histogram, the refiner then cannot move the exposure and tones that
    every ``clean`` render shares, and its discriminator judges texture and shading only.
    ``frame_knots`` K (with ``colour_curve`` and free tones only): the refiner sets one tone curve
    per frame instead of a change per pixel. The network's last feature maps, averaged over the
    image circle, give the change of grey level at K levels, and every pixel is moved by that
    piecewise-linear function of its level (:func:`frame_curve`). With K numbers per frame the
    refiner cannot paint the pixel patterns that fool a frozen critic; it can only choose, for each
    frame as a whole, the tones its content should have.
    Reflect padding keeps image edges free of a dark frame that the discriminator could key on.
    Args are stored in checkpoints to rebuild the model (see :mod:`adapt.apply`).
    """

    def __init__(self, width: int = 64, blocks: int = 4, output: str = "residual", tones: str = "free",
                 centred: bool = True, smooth_px: int = 0, rim_frac: float = 0.0, frame_knots: int = 0):
        super().__init__()
        if int(frame_knots) and not (2 <= int(frame_knots) <= CURVE_LEVELS and output == "colour_curve"
                                     and tones == "free" and not int(smooth_px)):
            raise ValueError(f"frame_knots must be 0, or 2 to {CURVE_LEVELS} with output 'colour_curve', tones "
                             f"'free' and smooth_px 0; got {frame_knots!r} with output {output!r}, tones "
                             f"{tones!r}, smooth_px {smooth_px!r}")
        if tones not in ("free", "keep") or (tones == "keep" and output != "colour_curve"):
            raise ValueError(f"tones must be 'free', or 'keep' with output 'colour_curve'; got {tones!r} "
                             f"with output {output!r}")
        if int(smooth_px) < 0 or (int(smooth_px) and output != "colour_curve"):
            raise ValueError(f"smooth_px must be 0, or positive with output 'colour_curve'; got {smooth_px!r} "
                             f"with output {output!r}")
        if not 0.0 <= float(rim_frac) < 0.5 or (float(rim_frac) and tones != "keep"):
            raise ValueError(f"rim_frac must be 0, or in (0, 0.5) with tones 'keep'; got {rim_frac!r} "
                             f"with tones {tones!r}")
        self.args = {"width": int(width), "blocks": int(blocks), "output": str(output), "tones": str(tones)}
        if tones == "keep":
            self.args["centred"] = bool(centred)
        if smooth_px:
            self.args["smooth_px"] = int(smooth_px)
        if rim_frac:
            self.args["rim_frac"] = float(rim_frac)
        if frame_knots:
            self.args["frame_knots"] = int(frame_knots)
        self.frame_knots = int(frame_knots)
        self.output, self.tones, self.centred, self.smooth_px = output, tones, bool(centred), int(smooth_px)
        self.rim_frac = float(rim_frac)
        self.head = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, padding_mode="reflect"), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.tail = nn.Conv2d(width, self.frame_knots or 3, 1)
        if output in ("residual", "colour_curve"):
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)
        if output == "colour_curve":   # grey -> grey until set: the colour of a grey pixel
            self.register_buffer("curve", torch.linspace(-1.0, 1.0, CURVE_LEVELS)[:, None].repeat(1, 3))

    def set_curve(self, lut_uint8_levels) -> None:
        """Set the colour curve from (CURVE_LEVELS, 3) colours in 8-bit levels (the ``lut`` of
        :class:`adapt.match.MatchTarget`): the colour at each grey level."""
        lut = torch.as_tensor(lut_uint8_levels, dtype=torch.float32)
        if lut.shape != (CURVE_LEVELS, 3):
            raise ValueError(f"a colour curve has shape ({CURVE_LEVELS}, 3), got {tuple(lut.shape)}")
        self.curve.copy_((lut.clamp(0.0, 255.0) / 127.5 - 1.0).to(self.curve.device))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 3, H, W) in [-1, 1]. ``mask`` ((N, 1, H, W), 1 inside the
        image circle) matters only with ``tones="keep"``, whose levels are exchanged inside it, and
        with ``frame_knots``, whose knots are averaged inside it."""
        f = self.tail(self.body(self.head(x)))
        if self.frame_knots:
            # the mean of a 1x1 conv is the 1x1 conv of the mean: K numbers per frame
            m = torch.ones_like(x[:, :1]) if mask is None else mask.to(f.dtype)
            knots = (f * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3)).clamp_min(1.0)
            return colour_curve(frame_curve(grey(x), knots), self.curve)
        if self.output == "residual":
            return (x + f.to(x.dtype)).clamp(-1.0, 1.0)
        if self.output == "colour_curve":
            if self.tones == "keep":
                # Only the order of g counts, and the straight-through gradient never sees its
                # size, so the change is bounded (tanh) rather than clamped: a clamp would tie every
                # pixel pushed past it, and unbounded g drifts to sizes where float32 ties them.
                # A change common to the whole frame reorders nothing, but a loss that would like
                # the frame brighter or darker pushes every pixel's g the same way: without the
                # frame's mean taken out first, the tanh saturates at one sign and its gradient
                # dies, and the refiner is stuck at the identity.
                # (``centred=False`` only rebuilds refiners saved before this, as they were trained.)
                if self.rim_frac:
                    if mask is None:
                        mask = torch.ones_like(x[:, :1])
                    mask = inner_mask(mask, self.rim_frac)
                d = _smooth(grey(f).to(x.dtype), mask, self.smooth_px)
                g = keep_tones(grey(x) + torch.tanh(_centred(d, mask) if self.centred else d), grey(x), mask)
            else:
                g = (grey(x) + _smooth(grey(f).to(x.dtype), mask, self.smooth_px)).clamp(-1.0, 1.0)
            return colour_curve(g, self.curve)
        return torch.tanh(f).to(x.dtype)


def _sn_or_identity(spectral_norm: bool):
    return nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)


def _strided_convs(width: int, layers: int, sn, max_factor: int) -> tuple[list[nn.Module], int]:
    """``layers`` stride-2 3x3 convs from RGB, each wrapped by ``sn`` and followed by LeakyReLU(0.2);
    conv i has ``width * min(2^i, max_factor)`` maps. Returns (modules, maps of the last conv)."""
    mods: list[nn.Module] = []
    c_in = 3
    for i in range(layers):
        c_out = width * min(2 ** i, max_factor)
        mods += [sn(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
        c_in = c_out
    return mods, c_in


class PatchDiscriminator(nn.Module):
    """A local adversarial discriminator: one realism logit per patch.

    ``layers`` stride-2 3x3 convs (LeakyReLU), a 3x3 conv, and a 1x1 conv to one logit:
    (N, 3, H, W) -> (N, 1, H / 2^layers, W / 2^layers). :attr:`receptive_field_px` is the side of
    the input patch that one logit sees.
    """

    def __init__(self, width: int = 32, layers: int = 3, spectral_norm: bool = True):
        super().__init__()
        self.args = {"width": int(width), "layers": int(layers), "spectral_norm": bool(spectral_norm)}
        sn = _sn_or_identity(spectral_norm)
        mods, c_in = _strided_convs(width, layers, sn, max_factor=8)
        mods += [sn(nn.Conv2d(c_in, c_in, 3, padding=1)), nn.LeakyReLU(0.2, inplace=True),
                 sn(nn.Conv2d(c_in, 1, 1))]
        self.net = nn.Sequential(*mods)
        self.stride = 2 ** layers
        # Each stride-2 3x3 conv adds 2 * (input stride) px; the last 3x3 adds 2 * stride.
        self.receptive_field_px = 1 + sum(2 * 2 ** i for i in range(layers)) + 2 * self.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CoarseDiscriminators(nn.Module):
    """The discriminators of the coarser scales of ``discriminator.scales`` (Wang et al. 2018,
    pix2pixHD's multi-scale discriminator): :class:`PatchDiscriminator` number k (1 .. scales-1)
    judges the frame average-pooled by 2^k, so that its patches span 2^k times as much of the frame
    as the full-resolution discriminator's. SimGAN's local loss alone never sees how colour and
    shading relate across the frame, which is what a classifier of whole frames sees."""

    def __init__(self, width: int = 32, layers: int = 3, spectral_norm: bool = True, scales: int = 1):
        super().__init__()
        self.nets = nn.ModuleList(PatchDiscriminator(width, layers, spectral_norm) for _ in range(scales - 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        """[(logits, mask, receptive field px) per coarse scale]: the pooled frame's logits, and the
        pooled mask (1 only where the whole pooled pixel lies inside the image circle)."""
        out = []
        for k, net in enumerate(self.nets, start=1):
            f = 2 ** k
            m = 1.0 - F.max_pool2d(1.0 - mask, kernel_size=f, stride=f)
            out.append((net(F.avg_pool2d(x, kernel_size=f, stride=f)), m, net.receptive_field_px))
        return out


def square_view(x: torch.Tensor, mask: torch.Tensor, size_px: int) -> torch.Tensor:
    """(N, 3, size_px, size_px): each frame's largest axis-aligned square inside its image circle
    (:func:`adapt.score.inscribed_box`, the view ``adapt score``'s classifier judges), resized
    (bilinear, antialiased); differentiable in ``x``. A frame with an empty mask gives its whole
    extent."""
    from .score import inscribed_box   # score does not import this module; a lazy import keeps it so

    out = []
    for xi, mi in zip(x, (mask[:, 0] > 0.5).cpu().numpy()):
        y0, y1, x0, x1 = inscribed_box(mi) if mi.any() else (0, mi.shape[0], 0, mi.shape[1])
        crop = xi[None, :, y0:y1, x0:x1].float()
        if crop.shape[-2:] != (size_px, size_px):
            crop = F.interpolate(crop, size=(size_px, size_px), mode="bilinear", align_corners=False,
                                 antialias=crop.shape[-1] > size_px)
        out.append(crop.to(x.dtype))
    return torch.cat(out)


GLOBAL_VIEWS = ("square", "circle")


class GlobalDiscriminator(nn.Module):
    """One realism logit per frame, shaped like ``adapt score``'s classifier
    (:class:`adapt.score.DomainClassifier`): ``layers`` stride-2 3x3 convs (LeakyReLU), the last
    feature maps averaged, and a linear layer.

    A patch discriminator decides every patch on its own; the classifier that scores adaptation
    decides a frame by the mean of its features. This head decides as the classifier does, so that
    the refiner is told about a difference that only shows over the whole frame (or crop).

    ``view="square"`` (the default) judges what the classifier judges: the largest square inside
    each frame's image circle, resized to the frame's side (:func:`square_view`), so that the
    border's shape (octagonal for CVC-ColonDB's scope, round for the renderer) cannot tell the sets
    apart. ``view="circle"`` (the head of earlier versions) averages the features whose 16-px cell
    lies inside the circle; their receptive fields (31 px) reach over the border, so the border's
    shape leaks into the logit.
    """

    def __init__(self, width: int = 32, layers: int = 4, spectral_norm: bool = True, view: str = "square"):
        super().__init__()
        if view not in GLOBAL_VIEWS:
            raise ValueError(f"view must be one of {GLOBAL_VIEWS}, got {view!r}")
        self.view = view
        sn = _sn_or_identity(spectral_norm)
        mods, c_in = _strided_convs(width, layers, sn, max_factor=4)
        self.features = nn.Sequential(*mods)
        self.head = sn(nn.Linear(c_in, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, weights), both (N, 1, 1, 1): one logit per frame, and its weight: 1 for the
        frames with something inside the image circle (``square``) or with at least one feature
        cell wholly inside it (``circle``), else 0 (the logit stays finite)."""
        if self.view == "square":
            sq = square_view(x, mask, x.shape[-1])
            if x.is_contiguous(memory_format=torch.channels_last):
                sq = sq.contiguous(memory_format=torch.channels_last)
            logits = self.head(self.features(sq).mean(dim=(2, 3)))[:, :, None, None]
            weights = (mask.flatten(1).amax(dim=1) > 0.5).to(torch.float32)[:, None, None, None]
            return logits, weights
        f = self.features(x)
        inside = 1.0 - F.adaptive_max_pool2d(1.0 - mask.to(f.dtype), f.shape[-2:])
        n = inside.sum(dim=(2, 3))
        pooled = torch.where(n > 0, (f * inside).sum(dim=(2, 3)) / n.clamp_min(1.0), f.mean(dim=(2, 3)))
        logits = self.head(pooled)[:, :, None, None]
        return logits, (n > 0).to(torch.float32)[:, :, None, None]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
