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


@intrinsic
def _float(typingctx, b):
    """The float32 of an int32 bit pattern (the inverse of :func:`_bits`)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


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


@njit(cache=True, nogil=True)
def _order_key(x):
    """An integer key of a float32 that sorts as the floats do (-0.0 just below +0.0)."""
    b = np.int64(_bits(x)) & 0xFFFFFFFF
    return b ^ 0xFFFFFFFF if b & 0x80000000 else b | 0x80000000


@njit(cache=True, nogil=True)
def order_pair(vals, k):
    """(the k-th, the (k + 1)-th) smallest of the float32 array ``vals`` (0-based; the second is
    the k-th again when k is the last), the values that ``np.partition(vals, (k, k + 1))`` puts at k
    and k + 1; None if ``vals`` holds a NaN. A radix select on 16-bit halves of order-preserving
    keys: two counting passes, against the partial sorts of ``np.partition`` (0.22 against 0.76 ms
    for the 59k pixels of a 256x256 frame's image circle)."""
    n = vals.shape[0]
    high = np.zeros(65536, np.int64)
    for i in range(n):
        x = vals[i]
        if x != x:
            return None
        high[_order_key(x) >> 16] += 1
    below = 0
    hb = 0
    while below + high[hb] <= k:
        below += high[hb]
        hb += 1
    low = np.zeros(65536, np.int64)
    for i in range(n):
        key = _order_key(vals[i])
        if key >> 16 == hb:
            low[key & 0xFFFF] += 1
    lb = 0
    while below + low[lb] <= k:
        below += low[lb]
        lb += 1
    key_k = (hb << 16) | lb
    key_next = key_k
    if below + low[lb] <= k + 1 and k + 1 < n:       # the next value is larger
        nb = lb + 1
        while nb < 65536 and low[nb] == 0:
            nb += 1
        if nb < 65536:
            key_next = (hb << 16) | nb
        else:                                          # it is the smallest of a later bucket
            b2 = hb + 1
            while high[b2] == 0:
                b2 += 1
            key_next = np.int64(1) << 40
            for i in range(n):
                key = _order_key(vals[i])
                if key >> 16 == b2 and key < key_next:
                    key_next = key
    return _key_float(key_k), _key_float(key_next)


@njit(cache=True, nogil=True)
def _key_float(key):
    """The float32 of an :func:`_order_key`."""
    b = key ^ 0x80000000 if key & 0x80000000 else key ^ 0xFFFFFFFF
    return _float(np.int32(b - (1 << 32) if b >= (1 << 31) else b))
