"""Compiled inner loop of the sensor model (numba): exposure and white balance, noise and the 8-bit
tone encoding in one pass over the frame.

:func:`colonsim.sensor.apply` runs these three stages as NumPy passes when numba is missing; this
loop computes the same float32 operations in the same order, so both give bit-identical frames
(``tests/colonsim/test_sensor.py`` checks it). One pass instead of about fifteen: the whole sensor
model of a realistic 256x256 frame took 6.0 ms of CPU against 7.5-7.9 ms
(``benchmarks/sensor_speed.py``). Compiled on first use and cached on disk (``cache=True``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _bits(typingctx, x):
    """The bit pattern of a float32 as an int32 (a register bitcast; no memory round trip)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))
    return types.int32(types.float32), codegen


@njit(cache=True, nogil=True)
def expose_noise_encode(img, wb, noise_gain, read_var, uniform, table, base, first, lo, shift, out):
    """img: (n, 3) float32 linear; wb: (3,) float32 channel gains (exposure included);
    noise_gain, read_var: float32 (``noise_gain`` and ``read_noise ** 2``); uniform: (n, 3) uint16
    indices into the normal quantile table ``table`` (65536,) float32, or a (0, 3) array for no
    noise; base, first, lo, shift: the threshold table of :func:`colonsim.sensor._threshold_table`.
    Writes (n, 3) uint8 into ``out``."""
    n = img.shape[0]
    noisy = uniform.shape[0] == n
    zero = np.float32(0.0)
    one = np.float32(1.0)
    last = base.shape[0] - 1
    for i in range(n):
        for c in range(3):
            x = img[i, c] * wb[c]
            if noisy:
                s = max(x, zero) * noise_gain + read_var
                s = np.float32(math.sqrt(s))   # float64 sqrt rounded to float32: exactly sqrtf
                x = x + table[uniform[i, c]] * s
            # min/max and selects, not branches: which way a value goes is data-dependent (clipped
            # highlights, the threshold test), and mispredicted branches would triple the time.
            x = min(max(x, zero), one)
            k = (_bits(x) >> shift) - lo
            k = k if k > 0 else 0
            k = k if k < last else last   # only a NaN gets here; NumPy's path would raise instead
            out[i, c] = base[k] + np.uint8(x >= first[k])
