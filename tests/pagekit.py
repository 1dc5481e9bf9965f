"""Shared page fixtures for the image-analysis tests: the shared corpus, cached synthetic pages."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scanstation.cleanup.imaging import to_gray
from scanstation_tools.synth import PageSpec, render_acr_page


def _corpus_dir() -> Path | None:
    # shared/ sits beside the repository clone (locally /work/shared, in CI beside the fresh clone).
    for cand in (Path(__file__).resolve().parents[2] / "shared" / "corpus", Path("/work/shared/corpus")):
        if cand.is_dir():
            return cand
    return None


CORPUS = _corpus_dir()
needs_corpus = pytest.mark.skipif(CORPUS is None, reason="shared corpus not available")


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
    assert CORPUS is not None
    with Image.open(CORPUS / name) as im:
        arr = to_gray(im)
    arr.setflags(write=False)
    return arr
