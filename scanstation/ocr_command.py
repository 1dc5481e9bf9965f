"""`scanstation ocr`: stand-alone OCR of ordinary files into a searchable PDF and a text sidecar."""

from __future__ import annotations

import argparse
from typing import Any

from .errors import StateError


def add_ocr_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("ocr", parents=[common], help="OCR an image/TIFF/PDF into a searchable PDF (training, bench)")
    s.add_argument("input", metavar="INPUT")
    s.add_argument("-o", "--output", required=True, metavar="OUT.pdf")
    s.add_argument("--sidecar", metavar="OUT.txt")
    s.add_argument("--lang", default="hin+eng")
    s.add_argument("--dpi", type=int)
    s.add_argument("--jobs", type=int)
    s.set_defaults(func=cmd_ocr)


def cmd_ocr(args: argparse.Namespace) -> int:
    raise StateError("the ocr command is not implemented yet")
