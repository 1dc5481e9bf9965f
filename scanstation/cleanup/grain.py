"""The paper's grain: σ of pixel noise from the differences of horizontally neighbouring pixels on blank paper.

One measure for the two places that need it: cleaning's ``grainy`` quality flag (quality.py) and the compact
page's fidelity gate, which averages its measures over more pixels on a grainy page (pdf/mrc.py).  Each caller
finds its own blank paper (what counts as a mark differs) and says which pixel pairs to use.
"""

from __future__ import annotations

import numpy as np

# The σ of a normal distribution is 1.4826 times its median absolute deviation; the difference of two pixels
# has √2 times their σ.
_MAD_TO_SIGMA = 1.4826 / float(np.sqrt(2))


def neighbour_noise_sigma(rows: np.ndarray, pairs: np.ndarray) -> float:
    """σ of the noise, in grey levels, of the noisiest channel of ``rows`` (H x W grey or H x W x C uint8), from
    the differences ``rows[:, x + 1] - rows[:, x]`` where ``pairs`` (H x W-1 bool) is set, by their median
    absolute deviation, so that what is left of marks barely moves it.  0.0 where no pair is set."""
    if not pairs.any():
        return 0.0
    channels = [rows] if rows.ndim == 2 else [rows[:, :, c] for c in range(rows.shape[2])]
    sigma = 0.0
    for channel in channels:
        d = (channel[:, 1:].astype(np.int16) - channel[:, :-1])[pairs]
        # Medians of small integers from their histograms (a tenth of np.median's time on a million values),
        # exactly np.median's: twice the median is an integer, and so is twice every deviation from it.
        twice_centre = _twice_median(d + 255, 511) - 510
        mad = _twice_median(np.abs(2 * d - twice_centre), 1021) / 4
        sigma = max(sigma, _MAD_TO_SIGMA * mad)
    return sigma


def _twice_median(values: np.ndarray, bins: int) -> int:
    """Twice the median (np.median's: the mean of the middle two of an even count) of non-negative integers
    under ``bins``, as an integer."""
    counts = np.cumsum(np.bincount(values, minlength=bins))
    n = int(counts[-1])
    lower = int(np.searchsorted(counts, (n - 1) // 2 + 1))  # the value at rank (n - 1) // 2, counting from 0
    upper = int(np.searchsorted(counts, n // 2 + 1))
    return lower + upper
