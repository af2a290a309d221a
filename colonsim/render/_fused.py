"""Compiled inner loop of the sensor model (numba): exposure and white balance, noise and the 8-bit
tone encoding in one pass over the frame.

:func:`colonsim.render.sensor.apply` runs these three stages as NumPy passes when numba is missing; this
loop computes the same float32 operations in the same order, so both give bit-identical frames
(``tests/colonsim/render/test_sensor.py`` checks it). One pass instead of about fifteen: the whole sensor
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
    noise; base, first, lo, shift: the threshold table of :func:`colonsim.render.sensor._threshold_table`.
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


@njit(cache=True, nogil=True)
def cone_min_depth(tri, tan_half):
    """:func:`colonsim.render.trajectory._cone_min_depth` in one pass: the same float64 operations in the
    same order for every candidate (vertices inside the cone, edges crossing it, the lowest point
    of each plane's conic), so the same minimum. tri: (F, 3, 3) float64 camera-frame triangles."""
    t2 = tan_half * tan_half
    best = np.inf
    f = tri.shape[0]
    q = np.empty((3, 3))
    for i in range(f):
        for v in range(3):
            q[v, 0] = tri[i, v, 0]
            q[v, 1] = tri[i, v, 1]
            q[v, 2] = tri[i, v, 2] * -1.0
        for v in range(3):
            z = q[v, 2]
            if z > 0 and q[v, 0] ** 2 + q[v, 1] ** 2 <= t2 * z * z and z < best:
                best = z
        for v in range(3):
            w = (v + 1) % 3
            ax, ay, az = q[v, 0], q[v, 1], q[v, 2]
            dx, dy, dz = q[w, 0] - ax, q[w, 1] - ay, q[w, 2] - az
            qa = dx * dx * 1.0 + dy * dy * 1.0 + dz * dz * -t2
            qb = 2.0 * (ax * dx * 1.0 + ay * dy * 1.0 + az * dz * -t2)
            qc = ax * ax * 1.0 + ay * ay * 1.0 + az * az * -t2
            disc = qb * qb - 4.0 * qa * qc
            if disc >= 0 and abs(qa) > 1e-12:
                root = math.sqrt(disc)
                for sign in (-1.0, 1.0):
                    u = (-qb + sign * root) / (2.0 * qa)
                    zu = az + u * dz
                    if u >= 0 and u <= 1 and zu > 0 and zu < best:
                        best = zu
        e1x, e1y, e1z = q[1, 0] - q[0, 0], q[1, 1] - q[0, 1], q[1, 2] - q[0, 2]
        e2x, e2y, e2z = q[2, 0] - q[0, 0], q[2, 1] - q[0, 1], q[2, 2] - q[0, 2]
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        k = nx * q[0, 0] + ny * q[0, 1] + nz * q[0, 2]
        lateral = math.hypot(nx, ny)
        s = 1.0 if k >= 0 else -1.0
        g = nz + s * tan_half * lateral
        if not k * g > 0:
            continue
        zc = k / g
        flat = lateral <= 1e-12 * abs(nz)
        cos_phi = 1.0 if flat else s * nx / lateral
        sin_phi = 0.0 if flat else s * ny / lateral
        px, py, pz = zc * tan_half * cos_phi, zc * tan_half * sin_phi, zc
        inside = True
        for v in range(3):
            w = (v + 1) % 3
            ex, ey, ez = q[w, 0] - q[v, 0], q[w, 1] - q[v, 1], q[w, 2] - q[v, 2]
            rx, ry, rz = px - q[v, 0], py - q[v, 1], pz - q[v, 2]
            cx = ey * rz - ez * ry
            cy = ez * rx - ex * rz
            cz = ex * ry - ey * rx
            if not cx * nx + cy * ny + cz * nz >= 0:
                inside = False
        if inside and zc < best:
            best = zc
    return best
