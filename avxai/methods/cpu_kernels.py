"""Compiled CPU kernels (numba) for the mask side of an optimisation: smooth masks with their upsampling, and
the area constraint, each in one call.

In PyTorch each of these is a chain of a dozen or more small tensor operations. Next to a model's passes the
cost of such a chain is mostly per operation, not arithmetic: each operation's dispatch code and buffers have
left the caches by the time the next step runs (``bench/extremal_overhead.py``). One compiled loop nest per
step does the same arithmetic and reads each value once.

Arrays are NumPy arrays (zero-copy views of CPU tensors), C-contiguous, float32 for the smooth masks. Masks on
grids of 1 to 3 axes are handled as 4-D arrays: ``3 - nd`` axes of size 1, the masks, then the grid's axes.
The callers (:class:`avxai.methods.smooth_mask.SmoothMaskGenerator`,
:class:`avxai.methods.extremal.AreaConstraint`) check dtypes and devices and keep PyTorch operations for
everything else. numba comes with librosa; this
module is imported only when a kernel is first needed, and compiled code is cached next to it.
"""

from __future__ import annotations

import numba
import numpy as np

_FASTMATH = {"contract", "arcp", "reassoc"}  # vectorised loops; NaN and infinities keep IEEE semantics
_KERNEL = {"fastmath": _FASTMATH, "cache": True, "nogil": True}
_HELPER = {"fastmath": _FASTMATH}

# exp(x) for float32 x in [0, EXP_MAX]: Cody-Waite range reduction and Cephes' expf polynomial, within 2 ulp. A
# loop of it vectorises, where one calling the C library's expf would not.
EXP_MAX = 40.0
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)


@numba.njit(**_HELPER)
def _exp_nonnegative(x):
    """``exp(x)`` for float32 ``x``, clamped to [0, EXP_MAX] first."""
    x = min(max(x, np.float32(0.0)), np.float32(EXP_MAX))
    n = np.floor(x * _LOG2E + np.float32(0.5))
    f = x - n * _LN2_HI
    f = f - n * _LN2_LO
    p = np.float32(1.9875691500e-4)
    p = p * f + np.float32(1.3981999507e-3)
    p = p * f + np.float32(8.3334519073e-3)
    p = p * f + np.float32(4.1665795894e-2)
    p = p * f + np.float32(1.6666665459e-1)
    p = p * f + np.float32(5.0000001201e-1)
    return (p * f * f + f + np.float32(1.0)) * np.float32(np.int64(1) << np.int64(n))


# -- layout ------------------------------------------------------------------------------------------------------
@numba.njit(**_HELPER)
def _around(shape, axis):
    """Sizes before and after ``axis`` of a 4-D shape: ``(prod(shape[:axis]), prod(shape[axis + 1:]))``."""
    before = 1
    after = 1
    for d in range(4):
        if d < axis:
            before *= shape[d]
        elif d > axis:
            after *= shape[d]
    return before, after


@numba.njit(**_HELPER)
def _with_axis(shape, axis, size):
    """``shape`` (4 ints) with ``shape[axis]`` replaced by ``size``."""
    s = [shape[0], shape[1], shape[2], shape[3]]
    s[axis] = size
    return (s[0], s[1], s[2], s[3])


@numba.njit(**_HELPER)
def _swap_outer(src, dst, first, second, inner):
    """Flat C-contiguous ``src`` ``(first, second, inner)`` into ``dst`` as ``(second, first, inner)``."""
    n = 0
    for s in range(second):
        for f in range(first):
            start = (f * second + s) * inner
            for a in range(inner):
                dst[n] = src[start + a]
                n += 1


@numba.njit(**_HELPER)
def _move_to_front(x, axis, out):
    """Axis ``axis`` of the 4-D C-contiguous ``x`` moved to the front, into ``out`` ``(x.shape[axis], rest)``."""
    before, after = _around(x.shape, axis)
    _swap_outer(x.reshape(-1), out.reshape(-1), before, x.shape[axis], after)


@numba.njit(**_HELPER)
def _move_from_front(x, shape, axis):
    """The inverse of :func:`_move_to_front`: ``x`` ``(shape[axis], rest)`` back to the 4-D ``shape``."""
    before, after = _around(shape, axis)
    out = np.empty(shape, dtype=x.dtype)
    _swap_outer(x.reshape(-1), out.reshape(-1), shape[axis], before, after)
    return out


@numba.njit(**_HELPER)
def _permuted_copy(x, perm):
    """``x.transpose(perm)`` as a new C-contiguous 4-D array (fast when its last axis is not of size 1)."""
    d = x.shape
    strides = (d[1] * d[2] * d[3], d[2] * d[3], d[3], 1)  # of x, in elements
    shape = (d[perm[0]], d[perm[1]], d[perm[2]], d[perm[3]])
    s0, s1, s2, s3 = strides[perm[0]], strides[perm[1]], strides[perm[2]], strides[perm[3]]
    src = x.reshape(-1)
    out = np.empty(shape, dtype=x.dtype)
    dst = out.reshape(-1)
    n = 0
    for i in range(shape[0]):
        for j in range(shape[1]):
            for k in range(shape[2]):
                start = i * s0 + j * s1 + k * s2
                for m in range(shape[3]):
                    dst[n] = src[start + m * s3]
                    n += 1
    return out


@numba.njit(**_HELPER)
def _inverse(perm):
    inv = [0, 0, 0, 0]
    for i in range(4):
        inv[perm[i]] = i
    return (inv[0], inv[1], inv[2], inv[3])


@numba.njit(**_HELPER)
def _outside(x, limit):
    """Whether any value of ``x`` lies outside [0, limit] or is NaN."""
    bad = False
    for v in x.reshape(-1):
        bad |= not (v >= 0.0 and v <= limit)
    return bad


# -- one smooth-max pass along the leading axis ------------------------------------------------------------------
@numba.njit(**_HELPER)
def _pass_forward(x, index, scaled_weight, outside, temperature, out, total):
    """``out[o] = T sum_j s_j e_j / (sum_j e_j - outside[o])``, ``s_j = scaled_weight[j, o] x[index[j, o]]``,
    ``e_j = exp(s_j)``, exponents unshifted (``0 <= s <= EXP_MAX``). Neighbours outside the parameter grid have
    weight 0, so ``e = 1``, and ``outside`` counts them off. Shapes: x ``(points, rest)``, index ``(k, cells)``,
    scaled_weight (kernel over T) ``(k, cells)``, outside ``(cells,)`` -> out, total ``(cells, rest)``."""
    rest = x.shape[1]
    k, cells = index.shape
    for o in range(cells):
        acc = out[o]
        tot = total[o]
        start = -outside[o]
        for r in range(rest):
            tot[r] = start
            acc[r] = 0.0
        for j in range(k):
            w = scaled_weight[j, o]
            row = x[index[j, o]]
            for r in range(rest):
                s = w * row[r]
                e = _exp_nonnegative(s)
                tot[r] += e
                acc[r] += s * e
        for r in range(rest):
            acc[r] = acc[r] * temperature / tot[r]


@numba.njit(**_HELPER)
def _pass_backward(x, index, scaled_weight, weight, temperature, out, total, grad, grad_x):
    """Gradient of :func:`_pass_forward` w.r.t. ``x`` into ``grad_x`` ``(points, rest)`` (zeroed here), from ``grad``
    ``(cells, rest)``: ``d out / d x_i = sum_j [index_j = i] kernel_j (e_j / total) (1 + s_j - out / T)``, with
    ``e_j`` and ``s_j`` recomputed (cheaper than keeping them)."""
    rest = x.shape[1]
    k, cells = index.shape
    grad_x[:] = 0.0
    scaled_grad = np.empty(rest, dtype=np.float32)
    offset = np.empty(rest, dtype=np.float32)
    inv_t = np.float32(1.0) / temperature
    for o in range(cells):
        for r in range(rest):
            scaled_grad[r] = grad[o, r] / total[o, r]
            offset[r] = np.float32(1.0) - out[o, r] * inv_t
        for j in range(k):
            w = scaled_weight[j, o]
            kernel = weight[j, o]
            row = x[index[j, o]]
            target = grad_x[index[j, o]]
            for r in range(rest):
                s = w * row[r]
                target[r] += kernel * _exp_nonnegative(s) * (offset[r] + s) * scaled_grad[r]


# -- linear interpolation along one axis of a 4-D array ------------------------------------------------------------
@numba.njit(**_HELPER)
def _interpolate(x, axis, low, high, frac):
    """``out[.., i, ..] = x[.., low[i], ..] + frac[i] (x[.., high[i], ..] - x[.., low[i], ..])`` along ``axis``."""
    before, after = _around(x.shape, axis)
    size_out = low.shape[0]
    src = x.reshape((before, x.shape[axis], after))
    out = np.empty((before, size_out, after), dtype=x.dtype)
    for b in range(before):
        for i in range(size_out):
            f = frac[i]
            lo = src[b, low[i]]
            hi = src[b, high[i]]
            dst = out[b, i]
            for a in range(after):
                dst[a] = lo[a] + f * (hi[a] - lo[a])
    return out.reshape(_with_axis(x.shape, axis, size_out))


@numba.njit(**_HELPER)
def _interpolate_transpose(grad, axis, low, high, frac, size_in):
    """The transpose of :func:`_interpolate`: ``size_out`` back to ``size_in`` along ``axis``."""
    before, after = _around(grad.shape, axis)
    size_out = low.shape[0]
    src = grad.reshape((before, size_out, after))
    out = np.zeros((before, size_in, after), dtype=grad.dtype)
    for b in range(before):
        for i in range(size_out):
            f = frac[i]
            g = src[b, i]
            lo = out[b, low[i]]
            hi = out[b, high[i]]
            for a in range(after):
                part = f * g[a]
                hi[a] += part
                lo[a] += g[a] - part
    return out.reshape(_with_axis(grad.shape, axis, size_in))


# -- smooth masks --------------------------------------------------------------------------------------------------
# A generator's tables, flat, so that grids of 1, 2 and 3 axes share one compiled signature:
#   passes (n_passes, 5) int64: axis position in the working array, neighbours k, cells, offset of the pass's
#       (k, cells) tables in index / scaled_weight / weight, offset of its (cells,) counts in outside;
#   upsampling (3, 3) int64 per grid axis: offset in low / high / frac, grid cells (0: not upsampled), position
#       of the axis in the working array after the passes;
#   work: one float32 buffer per call for every pass's input (points, rest), output and total (cells, rest).
@numba.njit(**_HELPER)
def _pass_tables(passes, i, index, scaled_weight, weight, outside):
    k, cells, offset, outside_offset = passes[i, 1], passes[i, 2], passes[i, 3], passes[i, 4]
    size = k * cells
    return (index[offset:offset + size].reshape((k, cells)), scaled_weight[offset:offset + size].reshape((k, cells)),
            weight[offset:offset + size].reshape((k, cells)), outside[outside_offset:outside_offset + cells])


@numba.njit(**_HELPER)
def _pass_buffers(work, offsets, i, points, cells, rest):
    start = offsets[i]
    x = work[start:start + points * rest].reshape((points, rest))
    start += points * rest
    out = work[start:start + cells * rest].reshape((cells, rest))
    start += cells * rest
    return x, out, work[start:start + cells * rest].reshape((cells, rest))


@numba.njit(**_HELPER)
def _as_tuple(values):
    return (values[0], values[1], values[2], values[3])


@numba.njit(**_KERNEL)
def smooth_masks(params, limit, temperature, passes, index, scaled_weight, weight, outside, work, offsets,
                 to_standard, upsampling, low, high, frac):
    """The separable smooth max of parameters ``params`` (float32, 4-D, see the module), pass after pass, and its
    linear upsampling to the grid (where ``upsampling`` says so).

    Pass ``i`` moves its axis of the working array to the front (the pass's input, in ``work`` from
    ``offsets[i]``), smooths it there (:func:`_pass_forward`) into its output and total, and leaves it in
    front. ``to_standard`` permutes the working array back to the parameters' order.

    Returns ``(ok, smooth masks, masks on the grid)``, both in the parameters' order; ``ok`` is False, and
    nothing computed, when a parameter lies outside ``[0, limit]`` (the range of unshifted exponents).
    """
    empty = np.empty((0, 0, 0, 0), dtype=np.float32)
    if _outside(params, limit):
        return False, empty, empty
    x = params
    for i in range(passes.shape[0]):
        source = passes[i, 0]
        index_i, scaled_i, _, outside_i = _pass_tables(passes, i, index, scaled_weight, weight, outside)
        before, after = _around(x.shape, source)
        inputs, outputs, totals = _pass_buffers(work, offsets, i, x.shape[source], passes[i, 2], before * after)
        _move_to_front(x, source, inputs)
        _pass_forward(inputs, index_i, scaled_i, outside_i, temperature, outputs, totals)
        x = outputs.reshape((passes[i, 2],) + _others(x.shape, source))
    perm = _as_tuple(to_standard)
    smooth = _permuted_copy(x, perm)
    for a in range(3):
        offset, size_out, position = upsampling[a, 0], upsampling[a, 1], upsampling[a, 2]
        if size_out:
            x = _interpolate(x, position, low[offset:offset + size_out], high[offset:offset + size_out],
                             frac[offset:offset + size_out])
    return True, smooth, _permuted_copy(x, perm)


@numba.njit(**_HELPER)
def _others(shape, axis):
    """The 3 sizes of a 4-D ``shape`` other than ``shape[axis]``."""
    s = [shape[d] for d in range(4) if d != axis]
    return (s[0], s[1], s[2])


@numba.njit(**_KERNEL)
def smooth_masks_backward(grad_masks, grad_smooth, temperature, passes, index, scaled_weight, weight, outside, work,
                          offsets, to_standard, upsampling, low, high, frac, smooth_shape):
    """Gradient w.r.t. the parameters of :func:`smooth_masks`, from gradients w.r.t. its masks on the grid
    ``grad_masks`` and w.r.t. its smooth masks ``grad_smooth`` (either may be empty, shape ``(0, 0, 0, 0)``),
    in the parameters' order; ``work`` as that call left it, ``smooth_shape`` the smooth masks' 4-D shape in
    the working layout."""
    from_standard = _inverse(_as_tuple(to_standard))
    if grad_masks.size:
        g = _permuted_copy(grad_masks, from_standard)
        for a in range(2, -1, -1):
            offset, size_out, position = upsampling[a, 0], upsampling[a, 1], upsampling[a, 2]
            if size_out:
                g = _interpolate_transpose(g, position, low[offset:offset + size_out],
                                           high[offset:offset + size_out], frac[offset:offset + size_out],
                                           smooth_shape[position])
        if grad_smooth.size:
            g_flat = g.reshape(-1)
            extra = _permuted_copy(grad_smooth, from_standard).reshape(-1)
            for c in range(g_flat.shape[0]):
                g_flat[c] += extra[c]
    else:
        g = _permuted_copy(grad_smooth, from_standard)
    for i in range(passes.shape[0] - 1, -1, -1):
        source, cells = passes[i, 0], passes[i, 2]
        index_i, scaled_i, weight_i, _ = _pass_tables(passes, i, index, scaled_weight, weight, outside)
        rest = g.size // cells
        points = (offsets[i + 1] - offsets[i]) // rest - 2 * cells  # the buffer holds (points + 2 cells) * rest
        inputs, outputs, totals = _pass_buffers(work, offsets, i, points, cells, rest)
        grad_x = np.empty((points, rest), dtype=np.float32)
        _pass_backward(inputs, index_i, scaled_i, weight_i, temperature, outputs, totals, g.reshape((cells, rest)),
                       grad_x)
        g = _move_from_front(grad_x, _insert((points, g.shape[1], g.shape[2], g.shape[3]), source), source)
    return g


@numba.njit(**_HELPER)
def _insert(front_shape, axis):
    """The 4-D shape with ``front_shape[0]`` moved from the front to position ``axis``."""
    s = [front_shape[1], front_shape[2], front_shape[3]]
    s.insert(axis, front_shape[0])
    return (s[0], s[1], s[2], s[3])


# -- area constraint -----------------------------------------------------------------------------------------------
@numba.njit(**_KERNEL)
def area_constraint(masks, thresholds, ones, weight):
    """The area regulariser ``R_a(m) = mean((sort(m) - r_a) ** 2)`` per row and ``weight`` times its gradient.

    ``thresholds[i]`` is row ``i``'s ``ones[i]``-th largest value (NumPy's partition finds it faster than a
    compiled quickselect): values above it face the ramp's ones and values below its zeros, and values tied
    with it share the ones left (exact, ties included); the gradient is ``2 (m - o) / N`` for what each value
    faces, ``o``. Shapes: masks ``(n, cells)``, thresholds and ones (int64) ``(n,)`` -> values ``(n,)`` and
    gradients ``(n, cells)``, in the masks' dtype (sums in float64).
    """
    n, cells = masks.shape
    values = np.empty(n, dtype=masks.dtype)
    grads = np.empty_like(masks)
    scale = 2.0 * weight / cells
    for i in range(n):
        row = masks[i]
        threshold = thresholds[i]
        above = 0
        tied = 0
        for v in row:
            above += v > threshold
            tied += v == threshold
        share = (ones[i] - above) / tied if tied else 0.0  # what each value tied at the threshold faces
        total = 0.0
        for c in range(cells):
            v = row[c]
            face = 1.0 if v > threshold else (share if v == threshold else 0.0)
            diff = v - face
            total += diff * diff + face - face * face
            grads[i, c] = scale * diff
        values[i] = total / cells
    return values, grads
