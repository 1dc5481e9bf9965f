"""Tests for crash-safe writes: content, modes, cleanup on failure, and kill -9 in a real subprocess."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchformat import atomic
from batchformat.atomic import TEMP_PREFIX, atomic_write, ensure_dir, fsync_dir, remove_stale_temps

REPO = Path(__file__).resolve().parents[1]


def _temps(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(TEMP_PREFIX)]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_atomic_write_creates_file_with_content_and_private_mode(tmp_path: Path) -> None:
    target = tmp_path / "obj.bin"
    atomic_write(target, b"hello")
    assert target.read_bytes() == b"hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _temps(tmp_path) == []


def test_atomic_write_replaces_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "obj.bin"
    atomic_write(target, b"old")
    atomic_write(target, b"new content", mode=0o644)
    assert target.read_bytes() == b"new content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert _temps(tmp_path) == []


def test_atomic_write_accepts_memoryview_and_large_data(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    target = tmp_path / "big"
    atomic_write(target, memoryview(data))
    assert target.read_bytes() == data


def test_failed_write_removes_temp_and_keeps_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "obj.bin"
    atomic_write(target, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    # Fault injection: the disk fails while flushing the new content.
    monkeypatch.setattr(atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert _temps(tmp_path) == []


def test_atomic_write_needs_existing_parent(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "obj", b"x")


def test_ensure_dir_creates_nested_private_dirs(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    ensure_dir(target)
    assert target.is_dir()
    assert stat.S_IMODE(target.stat().st_mode) & 0o077 == 0
    ensure_dir(target)  # idempotent
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FileExistsError):
        ensure_dir(tmp_path / "file" / "sub")


def test_fsync_dir(tmp_path: Path) -> None:
    fsync_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "nope")


def test_remove_stale_temps_only_touches_temp_names(tmp_path: Path) -> None:
    sub = tmp_path / "ab"
    sub.mkdir()
    (tmp_path / f"{TEMP_PREFIX}1234").write_bytes(b"partial")
    (sub / f"{TEMP_PREFIX}abcd").write_bytes(b"partial")
    (tmp_path / "keep.age").write_bytes(b"complete")
    (tmp_path / "tmp-not-ours").write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == 1
    assert (sub / f"{TEMP_PREFIX}abcd").exists()
    assert remove_stale_temps(tmp_path, recursive=True) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ab", "keep.age", "tmp-not-ours"]
    assert remove_stale_temps(tmp_path / "missing") == 0


# The child blocks inside fsync of the temp file, i.e. after all data is written but before the
# rename: the worst moment for a naive writer.  The parent kills it there.
_CHILD_BLOCKED_IN_FSYNC = """
import os, sys, time
from pathlib import Path
from batchformat import atomic
real_fsync = os.fsync
def slow_fsync(fd):
    print("in-fsync", flush=True)
    time.sleep(60)
    real_fsync(fd)
atomic.os.fsync = slow_fsync
atomic.atomic_write(Path(sys.argv[1]), b"N" * (4 * 1024 * 1024))
"""


@pytest.mark.parametrize("existed_before", [False, True])
def test_kill_9_before_rename_leaves_old_or_no_file(tmp_path: Path, existed_before: bool) -> None:
    target = tmp_path / "obj.bin"
    if existed_before:
        atomic_write(target, b"old complete content")
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD_BLOCKED_IN_FSYNC, str(target)],
        stdout=subprocess.PIPE,
        env=_child_env(),
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "in-fsync"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    if existed_before:
        assert target.read_bytes() == b"old complete content"
    else:
        assert not target.exists()
    # The interrupted write is recognisable and cleaned up at the next start.
    assert len(_temps(tmp_path)) == 1
    assert remove_stale_temps(tmp_path) == 1
    assert _temps(tmp_path) == []


_CHILD_WRITE_LOOP = """
import sys
from pathlib import Path
from batchformat.atomic import atomic_write
target = Path(sys.argv[1])
size = int(sys.argv[2])
print("ready", flush=True)
i = 0
while True:
    atomic_write(target, bytes([i % 256]) * size)
    i += 1
"""


def test_kill_9_at_random_moments_never_leaves_partial_file(tmp_path: Path) -> None:
    size = 4 * 1024 * 1024
    rng = random.Random(1234)
    for trial in range(4):
        target = tmp_path / f"obj-{trial}.bin"
        with subprocess.Popen(
            [sys.executable, "-c", _CHILD_WRITE_LOOP, str(target), str(size)],
            stdout=subprocess.PIPE,
            env=_child_env(),
            text=True,
        ) as child:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.25))
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        if target.exists():
            data = target.read_bytes()
            assert len(data) == size, f"trial {trial}: partial file of {len(data)} bytes"
            assert data == data[:1] * size, f"trial {trial}: mixed content"
        remove_stale_temps(tmp_path)
        assert _temps(tmp_path) == []
