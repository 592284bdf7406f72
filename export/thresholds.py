"""BatchNorm + sign folded into one exact integer threshold per neuron (docs/datapath.md).

numpy only: the torch bridge (train/) and the QONNX importer (export/qonnx_import.py) hand it the BN
statistics as float32 arrays; the threshold it returns is exact against training's own float32 ops.
"""

from __future__ import annotations

import numpy as np

from fedxnor.errors import FedxnorError


def fold_thresholds(
    shift: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    acc_to_x: tuple[int, int],
    acc_range: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Fold "BatchNorm then sign" into one integer compare per neuron, exactly.

    Training's eval path computes, in float32 and one correctly rounded op at a
    time, y = (x - shift) * scale + bias and outputs +1 when y >= 0. Here x is the
    ±1 dot product, an integer: x = k * acc + c with (k, c) = acc_to_x.

    Each of those ops is monotone in x, so y is monotone: non-decreasing for
    scale > 0, non-increasing for scale < 0, constant for scale == 0. A binary
    search over the integer accumulator range, evaluating exactly the same float32
    ops, finds where the output flips. No formula with float ties is involved.

    Returns (thresholds, inverted): out = (acc' >= T) where acc' is the accumulator
    of the row, inverted (acc' = the accumulator of the negated weight row) where
    `inverted` is True.
    """
    shift = np.asarray(shift, np.float32)
    scale = np.asarray(scale, np.float32)
    bias = np.asarray(bias, np.float32)
    if not (np.isfinite(shift).all() and np.isfinite(scale).all() and np.isfinite(bias).all()):
        raise FedxnorError("BatchNorm statistics contain NaN or Inf: the checkpoint is broken, retrain it")
    k, c = acc_to_x
    lo, hi = acc_range
    m = shift.shape[0]

    def fires(acc: np.ndarray) -> np.ndarray:
        x = (k * acc + c).astype(np.float32)
        y = (x - shift) * scale + bias
        return y >= np.float32(0)

    inverted = scale < 0
    # Search for the first acc where the (possibly flipped) output is 1.
    # Non-decreasing case: smallest acc with fires(acc). Non-increasing: largest acc
    # with fires(acc), then mapped to the inverted row's accumulator.
    lo_a = np.full(m, lo, np.int64)
    hi_a = np.full(m, hi + 1, np.int64)  # hi + 1 means "never"
    for _ in range(int(hi - lo + 2).bit_length() + 1):
        mid = (lo_a + hi_a) // 2
        probe = np.clip(mid, lo, hi)
        f = fires(probe)
        # increasing: answer <= mid iff fires(mid); decreasing: first acc where it stops firing
        go_left = np.where(inverted, ~f, f)
        go_left &= mid <= hi
        hi_a = np.where(go_left, mid, hi_a)
        lo_a = np.where(go_left, lo_a, mid + 1)
        lo_a = np.minimum(lo_a, hi_a)
    first = hi_a  # increasing: first firing acc; decreasing: first non-firing acc
    t = first.copy()
    # Decreasing: fires for acc <= first - 1. The inverted row has acc' = mirror(acc).
    # bipolar: acc' = N - acc (lo=0, hi=N); unsigned and signed (symmetric ranges): acc' = -acc. All are lo + hi - acc.
    last_firing = first - 1
    t_inv = lo + hi - last_firing  # fires iff acc' >= lo + hi - last_firing
    t = np.where(inverted, t_inv, t)
    const = scale == 0
    t = np.where(const, np.where(bias >= 0, lo, hi + 1), t)
    t = np.clip(t, lo, hi + 1)
    return t.astype(np.int64), inverted & ~const
