"""Shared page fixtures for the image-analysis tests: corpus pages (located by tests.corpus), cached synthetic pages."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from scanstation.imaging import to_gray
from scanstation_tools.synth import PageSpec, render_acr_page
from tests.corpus import corpus_file


@lru_cache(maxsize=128)
def synthetic_gray(**kw: object) -> np.ndarray:
    """A synthetic ACR page (PageSpec fields) as a grey array; read-only, shared between tests."""
    arr = to_gray(render_acr_page(PageSpec(**kw)).image)  # type: ignore[arg-type]
    arr.setflags(write=False)
    return arr


@lru_cache(maxsize=64)
def synthetic_array(**kw: object) -> np.ndarray:
    """Like synthetic_gray, but RGB pages (mode="RGB") stay RGB."""
    im = render_acr_page(PageSpec(**kw)).image  # type: ignore[arg-type]
    arr = np.array(im, dtype=np.uint8) if im.mode == "RGB" else to_gray(im)
    arr.setflags(write=False)
    return arr


@lru_cache(maxsize=16)
def corpus_gray(name: str) -> np.ndarray:
    """A page of the shared corpus as a grey array (read-only)."""
    with Image.open(corpus_file(name)) as im:
        arr = to_gray(im)
    arr.setflags(write=False)
    return arr


def acr_page_files(folder: Path, seed: int, n: int, *, prefix: str = "p", noise: float = 0.03) -> list[str]:
    """``n`` consecutive pages of one synthetic ACR (100 dpi, quick to import) saved as PNG files in ``folder``."""
    files = []
    for i in range(n):
        f = folder / f"{prefix}{seed}p{i}.png"
        render_acr_page(PageSpec(seed=seed, page_no=i + 1, dpi=100, noise=noise)).image.save(f)
        files.append(str(f))
    return files
