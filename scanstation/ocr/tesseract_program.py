"""The one wrapper around the tesseract program: version, installed languages and page recognition."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from drivers.process_guard import child_preexec
from scanstation.errors import ExternalToolError, InputError, OcrError

# Lets a deployment (or a test) point at another binary without code changes; an explicit
# ``tesseract_cmd`` argument still wins over it.
TESSERACT_ENV = "SCANSTATION_TESSERACT"
DEFAULT_COMMAND = "tesseract"

Output = Literal["txt", "hocr", "pdf"]
OUTPUTS: frozenset[str] = frozenset({"txt", "hocr", "pdf"})
_TEXT_ONLY: tuple[Output, ...] = ("txt",)

# Short queries (--version, --list-langs) answer in milliseconds; anything slower is a hung binary.
_QUERY_TIMEOUT = 15.0
_STDERR_TAIL = 600
_INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-eng tesseract-ocr-hin"

# Started through setpriv so the kernel kills tesseract if the process that started it dies (an OCR
# worker killed by the OOM killer, say).  Without it an orphaned tesseract would run on unbounded and
# write its plaintext outputs into work_dir after nobody is left to delete them.
_SETPRIV = shutil.which("setpriv")

# Parameters every run gets (a caller's ``variables`` override them).  Tesseract's layout analysis tests
# every text row for fixed pitch (typewriter spacing); the LSTM recogniser splits words itself and never
# uses the result.  Skipping the test saved 2-3 % of tesseract's time on the corpus, its turned pages,
# the synthetic ACR pages and a typewritten page, with the same text on every one of them
# (tests/test_ocr.py::test_default_parameters_keep_the_text checks it on the typewritten page).
DEFAULT_VARIABLES: Mapping[str, str] = {"textord_all_prop": "1", "textord_disable_pitch_test": "1"}


@dataclass(frozen=True, slots=True)
class TesseractResult:
    """What one tesseract run produced, read into memory (the files are already gone)."""

    text: str  # always produced; raw tesseract output (callers normalise, see scanstation.ocr.pages)
    hocr: str | None
    pdf: bytes | None  # text-only PDF page (textonly_pdf=1): invisible text, no image
    confidence: float | None  # mean word confidence 0-100; None when no word was found
    tsv: str = ""  # word boxes and confidences (tesseract's TSV renderer)


def resolve_command(tesseract_cmd: str | os.PathLike[str] | None = None) -> str:
    """Absolute path of the tesseract binary to run; ExternalToolError if there is none."""
    cmd = os.fspath(tesseract_cmd) if tesseract_cmd is not None else None
    cmd = cmd or os.environ.get(TESSERACT_ENV) or DEFAULT_COMMAND
    path = shutil.which(cmd)
    if path is None:
        raise ExternalToolError(
            f"the OCR program '{cmd}' was not found or is not executable; "
            f"install the Debian package tesseract-ocr ({_INSTALL_HINT})"
        )
    return path


def _child_env(work_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # The station parallelises by processes; tesseract's own OpenMP threads fight over the two cores
    # and make every page slower.
    env["OMP_THREAD_LIMIT"] = "1"
    if work_dir is not None:
        # Belt and braces: if leptonica or tesseract ever needs a scratch file, it lands in RAM too.
        env["TMPDIR"] = os.fspath(work_dir)
    return env


def _stderr_tail(stderr: bytes | str | None) -> str:
    if not stderr:
        return "(no error output)"
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    text = text.strip()
    return text[-_STDERR_TAIL:] if text else "(no error output)"


def _query(args: list[str], tesseract_cmd: str | os.PathLike[str] | None) -> str:
    """Run a short informational tesseract command and return stdout+stderr."""
    exe = resolve_command(tesseract_cmd)
    try:
        proc = subprocess.run(
            [exe, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_QUERY_TIMEOUT,
            env=_child_env(),
            check=True,
            preexec_fn=child_preexec(),  # core dumps off (None when RLIMIT_CORE 0 is inherited)
        )
    except subprocess.TimeoutExpired as e:
        raise ExternalToolError(f"'{exe} {' '.join(args)}' did not answer within {_QUERY_TIMEOUT:g} s") from e
    except subprocess.CalledProcessError as e:
        raise ExternalToolError(
            f"'{exe} {' '.join(args)}' failed (exit {e.returncode}): {_stderr_tail(e.stderr)}; "
            f"reinstall tesseract-ocr ({_INSTALL_HINT})"
        ) from e
    except OSError as e:
        raise ExternalToolError(f"cannot run the OCR program {exe}: {e.strerror or e}") from e
    # Tesseract 3/4 printed some of this on stderr, 5 on stdout; accept either.
    return proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")


def version(tesseract_cmd: str | os.PathLike[str] | None = None) -> str:
    """Tesseract's version string, e.g. ``"5.3.0"``."""
    out = _query(["--version"], tesseract_cmd)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].lower() == "tesseract":
            return parts[1].removeprefix("v")
    raise ExternalToolError(f"cannot read the tesseract version from: {out.strip()[:200]!r}")


_lang_cache: dict[str, frozenset[str]] = {}
_lang_lock = threading.Lock()


def languages(tesseract_cmd: str | os.PathLike[str] | None = None) -> set[str]:
    """Installed tesseract languages/scripts, e.g. ``{"eng", "hin", "osd", "Devanagari"}``."""
    out = _query(["--list-langs"], tesseract_cmd)
    # First line is 'List of available languages in "<dir>" (N):'; the rest are names.
    return {line.strip() for line in out.splitlines()[1:] if line.strip() and " " not in line.strip()}


def debian_package(lang: str) -> str:
    """Debian package that ships a tesseract language or script model."""
    if lang.startswith("script/") or lang[:1].isupper():
        # Script models (e.g. Devanagari) live in tesseract-ocr-script-<4-letter ISO 15924 code>.
        script = lang.removeprefix("script/")
        codes = {"Devanagari": "deva", "Latin": "latn", "Arabic": "arab", "Bengali": "beng"}
        return f"tesseract-ocr-script-{codes.get(script, script[:4].lower())}"
    return f"tesseract-ocr-{lang.lower().replace('_', '-')}"


def installed_languages(tesseract_cmd: str | os.PathLike[str] | None = None) -> frozenset[str]:
    """Installed languages and scripts, asked once per binary and then remembered (cheap to call per page)."""
    key = resolve_command(tesseract_cmd)
    with _lang_lock:
        known = _lang_cache.get(key)
    if known is None:
        known = frozenset(languages(key))
        with _lang_lock:
            _lang_cache[key] = known
    return known


def check_languages(lang: str, tesseract_cmd: str | os.PathLike[str] | None = None) -> None:
    """Raise ExternalToolError naming the Debian package if any part of ``lang`` is not installed.

    Tesseract itself only warns about a missing language in "hin+xyz" and carries on with the rest, so
    this check is what stops a page from being silently read with half the intended models.
    """
    wanted = [part for part in lang.split("+") if part]
    if not wanted:
        raise ExternalToolError(f"no OCR language given (got {lang!r})")
    key = resolve_command(tesseract_cmd)
    with _lang_lock:
        known = _lang_cache.get(key)
    if known is None or not set(wanted) <= known:
        # Re-ask on a miss: a language package may have been installed since the last look.
        known = frozenset(languages(key))
        with _lang_lock:
            _lang_cache[key] = known
    missing = [part for part in wanted if part not in known]
    if missing:
        packages = " ".join(debian_package(m) for m in missing)
        raise ExternalToolError(
            f"OCR language {', '.join(missing)} is not installed; install it with: apt-get install {packages}"
        )


def _mean_confidence(tsv: str) -> float | None:
    """Mean word confidence from tesseract's TSV output (level 5 rows are words)."""
    confs: list[float] = []
    for line in tsv.splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
            continue
        try:
            conf = float(cols[10])
        except ValueError:
            continue
        if conf >= 0:
            confs.append(conf)
    return round(sum(confs) / len(confs), 2) if confs else None


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"crashed ({name})"
    if returncode >= 128:
        # A shell wrapper reports a child killed by signal N as exit 128+N.
        return f"crashed (exit {returncode})"
    return f"failed (exit {returncode})"


def recognise(
    image_path: Path,
    work_dir: Path,
    lang: str = "hin+eng",
    psm: int = 3,
    dpi: int | None = 300,
    timeout: float = 120,
    outputs: Collection[Output] = _TEXT_ONLY,
    *,
    label: str | None = None,
    tesseract_cmd: str | os.PathLike[str] | None = None,
    variables: Mapping[str, str] | None = None,
    confidence: bool = True,
) -> TesseractResult:
    """Run tesseract once on ``image_path`` and return its outputs read into memory.

    Outputs are written to uniquely named files in ``work_dir`` (a private RAM directory), read and
    deleted before returning, whatever happens.  ``txt`` is always produced; ``hocr`` and ``pdf`` on
    request.  The PDF is a text-only page (``textonly_pdf=1``) meant to be laid under the full-quality
    image by scanstation.pdf.searchable.

    ``image_path`` may also be a text file listing one image per line: tesseract then reads them all with
    its models loaded once, and writes one text (pages separated by form feeds) and one PDF page per
    image; pass ``dpi=None`` so that each image's own resolution tag is used.
    ``variables`` are tesseract parameters (``-c name=value``), e.g. ``{"thresholding_method": "2"}``.
    ``confidence`` False skips the TSV renderer (about 4 % of the run) when no word confidences are wanted.

    Raises OcrError on timeout, crash, non-zero exit or missing output; ExternalToolError if the binary
    or a language is missing; InputError if the image file does not exist.
    """
    unknown = set(outputs) - OUTPUTS
    if unknown:
        raise ValueError(f"unknown tesseract outputs {sorted(unknown)}; choose from {sorted(OUTPUTS)}")
    label = label or image_path.name
    if not image_path.is_file():
        raise InputError(str(image_path), "image file for OCR does not exist")
    run = _prepare_run(os.fspath(image_path), work_dir, lang, psm, dpi, outputs, tesseract_cmd, variables, confidence)
    try:
        try:
            proc = subprocess.run(
                run.cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                env=_child_env(work_dir),
                cwd=work_dir,
                check=False,
                preexec_fn=child_preexec(),
            )
        except subprocess.TimeoutExpired as e:
            # subprocess.run has already killed and reaped the child.
            raise OcrError(f"tesseract timed out after {timeout:g} s on {label}") from e
        except OSError as e:
            raise ExternalToolError(f"cannot run the OCR program {run.exe}: {e.strerror or e}") from e
        return _collect(run, proc.returncode, proc.stderr, label)
    finally:
        run.remove_files()


@dataclass(slots=True)
class _Run:
    """One tesseract command line and the output files it will write."""

    exe: str
    lang: str
    cmd: list[str]
    files: dict[str, Path]

    def remove_files(self) -> None:
        # Plaintext OCR results must not outlive the run, not even in RAM.
        for path in self.files.values():
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def _prepare_run(
    source: str,
    work_dir: Path,
    lang: str,
    psm: int,
    dpi: int | None,
    outputs: Collection[Output],
    tesseract_cmd: str | os.PathLike[str] | None,
    variables: Mapping[str, str] | None,
    confidence: bool,
) -> _Run:
    unknown = set(outputs) - OUTPUTS
    if unknown:
        raise ValueError(f"unknown tesseract outputs {sorted(unknown)}; choose from {sorted(OUTPUTS)}")
    exe = resolve_command(tesseract_cmd)
    check_languages(lang, exe)
    # tsv is the cheapest way to get word confidences from the CLI.
    exts = ["txt", *(["tsv"] if confidence else []), *(ext for ext in ("hocr", "pdf") if ext in outputs)]
    base = work_dir / f"tess-{secrets.token_hex(8)}"
    files = {ext: base.with_name(f"{base.name}.{ext}") for ext in exts}
    cmd = [exe, source, os.fspath(base), "-l", lang, "--psm", str(psm)]
    if dpi is not None:
        cmd += ["--dpi", str(dpi)]
    for name, value in {**DEFAULT_VARIABLES, **(variables or {})}.items():
        if not name.replace("_", "").isalnum() or "=" in str(value):
            raise ValueError(f"bad tesseract parameter {name!r}={value!r}")
        cmd += ["-c", f"{name}={value}"]
    if "pdf" in outputs:
        cmd += ["-c", "textonly_pdf=1"]
    cmd += exts  # config names (txt, tsv, hocr, pdf) select the renderers; they must come last
    if _SETPRIV is not None:
        cmd = [_SETPRIV, "--pdeathsig", "KILL", "--", *cmd]
    return _Run(exe, lang, cmd, files)


def _collect(run: _Run, returncode: int, stderr_bytes: bytes | None, label: str) -> TesseractResult:
    """Read a finished run's outputs into memory (the caller removes the files)."""
    stderr = _stderr_tail(stderr_bytes)
    if returncode != 0:
        if "Failed loading language" in stderr or "couldn't load any languages" in stderr:
            raise ExternalToolError(
                f"tesseract could not load language '{run.lang}': {stderr}; "
                f"reinstall: apt-get install {' '.join(debian_package(p) for p in run.lang.split('+'))}"
            )
        raise OcrError(f"tesseract {_describe_exit(returncode)} on {label}: {stderr}")
    data: dict[str, bytes] = {}
    for ext, path in run.files.items():
        try:
            data[ext] = path.read_bytes()
        except FileNotFoundError as e:
            raise OcrError(f"tesseract produced no {ext} output for {label}: {stderr}") from e
    if "pdf" in data and not data["pdf"].startswith(b"%PDF"):
        raise OcrError(f"tesseract wrote a damaged PDF text layer for {label}: {stderr}")
    tsv = data["tsv"].decode("utf-8", "replace") if "tsv" in data else ""
    return TesseractResult(
        text=data["txt"].decode("utf-8", "replace"),
        hocr=data["hocr"].decode("utf-8", "replace") if "hocr" in data else None,
        pdf=data.get("pdf"),
        confidence=_mean_confidence(tsv) if tsv else None,
        tsv=tsv,
    )


class WarmRun:
    """A tesseract started ahead of its pages: it loads its models while they are still being prepared.

    Tesseract loads the models before it reads its input, and given ``-`` as input it reads a list of
    image files from stdin; so a run can be started as soon as its model is known, and the pages handed
    over later with :meth:`finish`.  Loading costs 0.07-0.2 s a run (more for the Devanagari model):
    started early, that time is spent beside the run before it instead of after it.  One page list per
    run; :meth:`abandon` kills a run that is not needed after all.  Outputs as :func:`recognise` with
    ``dpi=None`` (each image's own resolution tag), text pages separated by form feeds.
    """

    def __init__(
        self,
        work_dir: Path,
        lang: str,
        psm: int = 3,
        outputs: Collection[Output] = _TEXT_ONLY,
        *,
        tesseract_cmd: str | os.PathLike[str] | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        self.lang, self.psm, self.work_dir = lang, psm, work_dir
        self._run = _prepare_run("-", work_dir, lang, psm, None, outputs, tesseract_cmd, variables, False)
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                self._run.cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_child_env(work_dir),
                cwd=work_dir,
                preexec_fn=child_preexec(),
            )
        except OSError as e:
            raise ExternalToolError(f"cannot run the OCR program {self._run.exe}: {e.strerror or e}") from e

    def finish(self, images: Collection[Path], timeout: float, label: str) -> TesseractResult:
        """Hand the run its images (files in ``work_dir``), wait for it and return its outputs."""
        proc, self._proc = self._proc, None
        if proc is None:
            raise OcrError(f"the tesseract run for {label} was already used")
        listing = "".join(f"{os.fspath(path)}\n" for path in images).encode()
        try:
            try:
                _out, err = proc.communicate(listing, timeout=timeout)
            except subprocess.TimeoutExpired as e:
                proc.kill()
                proc.communicate()
                raise OcrError(f"tesseract timed out after {timeout:g} s on {label}") from e
            return _collect(self._run, proc.returncode, err, label)
        finally:
            self._run.remove_files()

    def abandon(self) -> None:
        """Kill the run if it was not used; safe to call more than once."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.communicate()
        self._run.remove_files()
