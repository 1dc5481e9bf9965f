"""cleanup.grain: the paper's grain from neighbouring pixels, as cleaning's flag and the compact page's gate use it."""

from __future__ import annotations

import numpy as np
import pytest

from scanstation.cleanup.grain import neighbour_noise_sigma


def _reference(rows: np.ndarray, pairs: np.ndarray) -> float:
    sigma = 0.0
    for channel in [rows] if rows.ndim == 2 else [rows[:, :, c] for c in range(rows.shape[2])]:
        d = (channel[:, 1:].astype(np.int16) - channel[:, :-1])[pairs]
        sigma = max(sigma, 1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2))
    return sigma


def test_the_histogram_medians_are_numpys_exactly() -> None:
    rng = np.random.default_rng(0)
    for trial in range(200):
        h, w = int(rng.integers(1, 30)), int(rng.integers(2, 30))
        shape = (h, w) if trial % 2 else (h, w, 3)
        rows = np.clip(128 + rng.normal(0, rng.uniform(0, 120), shape), 0, 255).astype(np.uint8)
        pairs = rng.random((h, w - 1)) < 0.6
        if pairs.any():
            assert neighbour_noise_sigma(rows, pairs) == pytest.approx(_reference(rows, pairs), abs=1e-9)


def test_sigma_of_gaussian_noise_in_the_noisiest_channel() -> None:
    rng = np.random.default_rng(1)
    rows = np.full((200, 400, 3), 128.0)
    rows[:, :, 1] += rng.normal(0, 12.0, rows.shape[:2])
    rows[:, :, 2] += rng.normal(0, 4.0, rows.shape[:2])
    pairs = np.ones((200, 399), bool)
    assert neighbour_noise_sigma(rows.astype(np.uint8), pairs) == pytest.approx(12.0, rel=0.1)
    assert neighbour_noise_sigma(np.full((5, 5), 200, np.uint8), np.zeros((5, 4), bool)) == 0.0
