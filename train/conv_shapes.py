"""Shapes of conv blocks (torch-free): each block is (out_c, k, stride, pad, pool) — a k x k convolution
(stride, padding), BatchNorm + sign, then max-pool pool x pool with stride pool (0 or 1 = none)."""

from __future__ import annotations

from typing import NamedTuple

from fedxnor.errors import FedxnorError


def conv_out(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


class ConvGeometry(NamedTuple):
    """One conv block on an (in_h, in_w, in_c) map: conv -> (out_h, out_w, out_c), then max-pool pool x pool
    (stride pool; 0 = none) -> (pool_h, pool_w, out_c)."""

    in_h: int
    in_w: int
    in_c: int
    out_c: int
    k: int
    stride: int
    pad: int
    pool: int
    out_h: int
    out_w: int
    pool_h: int
    pool_w: int


def conv_geometry(input_shape: tuple[int, ...], convs) -> list[ConvGeometry]:
    """The conv blocks' shapes for images of input_shape ((H, W) or (H, W, C)); FedxnorError if a map vanishes."""
    h, w, c = (*input_shape, 1) if len(input_shape) == 2 else tuple(input_shape)
    out = []
    for i, (out_c, k, stride, pad, pool) in enumerate(convs):
        oh, ow = conv_out(h, k, stride, pad), conv_out(w, k, stride, pad)
        ph, pw = (oh // pool, ow // pool) if pool > 1 else (oh, ow)
        if min(oh, ow, ph, pw) < 1:
            raise FedxnorError(f"conv block {i} ({k} x {k}, stride {stride}, pad {pad}, pool {pool}) does not fit a "
                               f"{h} x {w} map; use larger images or a model with fewer conv blocks")
        out.append(ConvGeometry(h, w, c, out_c, k, stride, pad, pool, oh, ow, ph, pw))
        h, w, c = ph, pw, out_c
    return out


def conv_sizes(input_shape: tuple[int, ...], convs, hidden: tuple[int, ...], classes: int = 10) -> tuple[int, ...]:
    """Dense sizes after conv blocks: (NHWC flatten of the last map, hidden..., classes)."""
    last = conv_geometry(input_shape, convs)[-1]
    return (last.pool_h * last.pool_w * last.out_c, *hidden, classes)


# conv blocks: (out_c, k, stride, pad, pool)
# cnv-fmnist pads every conv (28 -> 28, pool 14 -> 14, pool 7 x 7 x 64) and has 768 hidden units: central
# training measured valid convs at 0.894 (15 epochs), padded with 256 hidden at 0.910 (40 epochs), 512 at 0.9178
# (40) and 768 at 0.9206 (40; bench/results/conv_central_cnv-fmnist_*.json); the ECP5-85F fold keeps its cycles
CNV_FMNIST = ((32, 3, 1, 1, 0), (32, 3, 1, 1, 2), (64, 3, 1, 1, 0), (64, 3, 1, 1, 2))
# cnv-small pads its first two convs (28 -> 28 -> 28, pool 14 -> 12, pool 6 x 6 x 24): padding took the all-valid
# 16-32-pool-32-pool (800-64-10, best 0.871) to 0.8876 in 12 epochs with a third conv of 32 (1152-64-10), but those
# 88 Kbit need 33 of the UP5K's 30 block RAMs (hw/plan); 24 channels there: 68 Kbit, which fit
CNV_SMALL = ((16, 3, 1, 1, 0), (32, 3, 1, 1, 2), (24, 3, 1, 0, 2))

CNV_FMNIST_SIZES = conv_sizes((28, 28), CNV_FMNIST, (768,))  # (3136, 768, 10)
CNV_SMALL_SIZES = conv_sizes((28, 28), CNV_SMALL, (64,))  # (864, 64, 10)
