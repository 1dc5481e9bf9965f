"""Where the shared page corpus is, defined once for every test.

The corpus is ``../shared/corpus`` beside the repository clone (locally /work/shared/corpus, in CI beside
the fresh clone); ``$SCANSTATION_CORPUS`` overrides it (another checkout, or a missing directory to check
that the corpus tests skip).  Tests that need it either carry ``@needs_corpus`` or take their files
through ``corpus_file(name)``: without the corpus they are skipped with a reason naming the path looked
at, never failed.  With the corpus present, a missing file is a failure (the corpus is incomplete).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV_VAR = "SCANSTATION_CORPUS"
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"

CORPUS: Path = Path(os.environ[ENV_VAR]).expanduser() if os.environ.get(ENV_VAR) else DEFAULT_CORPUS
SKIP_REASON = f"corpus not found at {CORPUS} (../shared/corpus beside the repository, or ${ENV_VAR})"


def corpus_available() -> bool:
    return CORPUS.is_dir()


needs_corpus = pytest.mark.skipif(not corpus_available(), reason=SKIP_REASON)


def require_corpus() -> Path:
    """The corpus directory; skips the calling test (or fixture's tests) when it is absent."""
    if not corpus_available():
        pytest.skip(SKIP_REASON)
    return CORPUS


def corpus_file(name: str) -> Path:
    """A file of the corpus; skips when the corpus is absent, fails when the corpus lacks the file."""
    path = require_corpus() / name
    if not path.is_file():
        pytest.fail(f"{name} is missing from the corpus at {CORPUS} (see its MANIFEST.tsv)")
    return path
