"""Depthwise 2-D convolution (one input channel per group, any channel multiplier) without strided
im2col copies: the kernel of ops/conv.py's Conv for that case.

Each image is split into its stride phases (one per row and column remainder, one phase at
stride 1), each phase padded into rows of its width laid end to end, a channel's phases a fixed
pitch after the last's, so that each kernel tap reads one contiguous run of one phase per channel,
and the runs of all the channels of a block are one contiguous copy into the im2col matrix (the
strided im2col copy's inner loop runs along output rows a few cells long). One small GEMM per
channel then weighs its taps; the outputs are computed at the phase's width and the extra columns
dropped, with the bias added, as they are written out. The work goes a block of channels at a
time, so that the block's phases, im2col matrix and output stay in cache from the copies to the
write-out and the scratch is a block's, not an image's. The blocks run one after another: spread
over two threads beside OpenBLAS's two, whose idle threads spin on the cores, mobilenet_v2 took
twice as long on a quiet machine (docs/performance.md). Multiplying and adding each tap's run into the output instead (two NumPy passes
per tap: there is no fused multiply-add ufunc) measured no faster on mobilenet_v2's shapes once
blocked, and up to 1.7x slower at 14x14 and 28x28 (docs/performance.md).
"""

from __future__ import annotations

import numpy as np


def is_depthwise_2d(n: int, channels: int, groups: int) -> bool:
    """Whether a conv runs here: 2-D, one input channel per group (any channel multiplier)."""
    return n == 2 and channels == groups


# a block's phases, im2col matrix and output together: about a core's L2 on the machines measured,
# where 128 KiB to 8 MiB measured within noise of each other and no blocking 10% slower
BLOCK_BYTES = 1 << 20


def flat_geometry(shape, w_shape, amounts, strides, dilations) -> tuple[int, int, int, list[tuple[int, int]]]:
    """A phase's rows and columns, the spare cells after it, and each tap's (phase, start)."""
    (top, bottom), (left, right) = amounts
    sh, sw = strides
    rows, cols = -(-(shape[2] + top + bottom) // sh), -(-(shape[3] + left + right) // sw)
    taps = [(i * dilations[0], j * dilations[1]) for i in range(w_shape[2]) for j in range(w_shape[3])]
    spare = max(c // sw for _, c in taps)
    return rows, cols, spare, [((r % sh) * sw + c % sw, (r // sh) * cols + c // sw) for r, c in taps]


def _per_channel(shape, w_shape, amounts, strides, dilations, out) -> int:
    """The entries one channel's phases, im2col rows and output rows take."""
    rows, cols, spare, starts = flat_geometry(shape, w_shape, amounts, strides, dilations)
    pitch = rows * cols + spare
    return (strides[0] * strides[1] + len(starts)) * pitch + w_shape[0] // shape[1] * out[0] * cols


def block_channels(shape, w_shape, amounts, strides, dilations, out, itemsize: int) -> int:
    """How many channels flat_windows works on at a time."""
    per_channel = _per_channel(shape, w_shape, amounts, strides, dilations, out)
    return max(1, min(shape[1], BLOCK_BYTES // (per_channel * itemsize)))


def flat_scratch(shape, w_shape, amounts, strides, dilations, out, itemsize: int) -> int:
    """The entries flat_windows holds beside its output."""
    block = block_channels(shape, w_shape, amounts, strides, dilations, out, itemsize)
    starts = flat_geometry(shape, w_shape, amounts, strides, dilations)[3]
    return block * _per_channel(shape, w_shape, amounts, strides, dilations, out) + \
        strides[0] * strides[1] * max(start for _, start in starts)


def flat_windows(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, y: np.ndarray, amounts, strides,
                 dilations) -> None:
    """y = the depthwise conv of x (2-D) by w, plus b where given."""
    batch, channels, height, width = x.shape
    mult = w.shape[0] // channels
    (top, _), (left, _) = amounts
    sh, sw = strides
    out_h, out_w = y.shape[2:]
    rows, cols, spare, starts = flat_geometry(x.shape, w.shape, amounts, strides, dilations)
    run = out_h * cols
    block = block_channels(x.shape, w.shape, amounts, strides, dilations, y.shape[2:], x.itemsize)
    per_image = -(-channels // block)
    per_tap = w.reshape(channels, mult, -1)
    bias = b.reshape(channels * mult, 1, 1) if b is not None else None

    pitch = rows * cols + spare
    tail = max(start for _, start in starts)

    # a channel's phases `pitch` apart, and room for the last tap's copy to read past the last
    # channel (cells no output keeps). The padding cells are zero once and stay so: every block
    # copies into the same interior
    phases = np.zeros((sh * sw, block * pitch + tail), x.dtype)
    copies = []
    for a in range(sh):
        for c in range(sw):
            r0, c0 = (a - top) % sh, (c - left) % sw        # the first input row, column in this phase
            n_r, n_c = len(range(r0, height, sh)), len(range(c0, width, sw))
            if n_r and n_c:
                grid = phases[a * sw + c, :block * pitch].reshape(block, pitch)[:, :rows * cols]
                grid = grid.reshape(block, rows, cols)
                at_r, at_c = (r0 + top) // sh, (c0 + left) // sw
                copies.append((grid[:, at_r:at_r + n_r, at_c:at_c + n_c], (slice(r0, None, sh), slice(c0, None, sw))))
    im2col = np.empty((len(starts), block * pitch), x.dtype)
    wide = np.empty((block, mult, run), x.dtype)

    for i in range(batch * per_image):
        image, c0 = divmod(i, per_image)
        c0 *= block
        k = min(block, channels - c0)
        for into, (rs, cs) in copies:
            into[:k] = x[image, c0:c0 + k, rs, cs]
        # each tap's runs for all k channels are one contiguous copy, at the phases' pitch
        for t, (p, start) in enumerate(starts):
            im2col[t, :k * pitch] = phases[p, start:start + k * pitch]
        acc = wide[:k]
        taps = im2col[:, :k * pitch].reshape(len(starts), k, pitch)[:, :, :run].transpose(1, 0, 2)
        np.matmul(per_tap[c0:c0 + k], taps, out=acc)
        result = acc.reshape(k * mult, out_h, cols)[:, :, :out_w]
        into = y[image, c0 * mult:(c0 + k) * mult]
        if bias is None:
            into[...] = result
        else:
            np.add(result, bias[c0 * mult:(c0 + k) * mult], out=into)
