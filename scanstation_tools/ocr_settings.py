"""The options of ``scanstation ocr`` (:mod:`scanstation_tools.ocr_command`), checked once."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from scanstation.errors import InputError
from scanstation.ocr import pages as ocr

_LANG_PART = re.compile(r"^(script/)?[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class OcrSettings:
    """One validated set of options for ``ocr_command.run_ocr`` (the CLI's arguments, checked once)."""

    input: Path
    output: Path
    sidecar: Path | None = None
    lang: str = ocr.DEFAULT_LANG
    dpi: int | None = None  # overrides the image's resolution; PDF rendering resolution
    jobs: int = 1
    timeout: float = ocr.DEFAULT_TIMEOUT
    strategy: ocr.Strategy = "auto"
    photo: bool = False  # grey/colour pages that must be re-encoded: JPEG instead of lossless
    metadata: dict[str, str] = field(default_factory=dict)  # title, employee_code, employee_name, ...
    report: Path | None = None

    def __post_init__(self) -> None:
        parts = self.lang.split("+")
        if not self.lang or not all(_LANG_PART.match(p) for p in parts):
            raise InputError("--lang", f"{self.lang!r} is not a tesseract language list such as hin+eng")
        if self.dpi is not None and not 30 <= self.dpi <= 2400:
            raise InputError("--dpi", f"{self.dpi} is outside 30..2400")
        if self.jobs < 1 or self.jobs > 64:
            raise InputError("--jobs", f"{self.jobs} is outside 1..64")
        if not self.timeout > 0:
            raise InputError("--timeout", "must be a positive number of seconds")
        for flag, path in (("-o", self.output), ("--sidecar", self.sidecar), ("--report", self.report)):
            if path is None:
                continue
            if not path.parent.is_dir():
                raise InputError(str(path), f"{flag}: the folder {path.parent} does not exist")
            if path.is_dir():
                raise InputError(str(path), f"{flag}: is a folder, give a file name")
            if path.exists() and self.input.exists() and os.path.samefile(path, self.input):
                raise InputError(str(path), f"{flag}: would overwrite the input")
        outs = [p.resolve() for p in (self.output, self.sidecar, self.report) if p is not None]
        if len(set(outs)) != len(outs):
            raise InputError(str(self.output), "the PDF, sidecar and report must be different files")
