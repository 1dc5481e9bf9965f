"""Tests for the private RAM directory: tmpfs, mode 0700, cleanup, stale sweep, process temp dir."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from scanstation.errors import ScanStationError, StateError
from scanstation.vault.ramdir import RamDir, filesystem_type, is_ram_backed, set_process_tempdir, sweep_stale

REPO = Path(__file__).resolve().parents[1]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _dead_pid() -> int:
    # A child that has exited and been reaped: its pid names no process (unless reused, very unlikely).
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.fixture
def ramdir() -> Iterator[RamDir]:
    with RamDir(prefix="sstest") as rd:
        yield rd


def test_ramdir_is_private_on_tmpfs_and_removed_on_close() -> None:
    rd = RamDir(prefix="sstest")
    path = rd.path
    try:
        # Independent check of the filesystem type with coreutils, not our own mount-table parser.
        fstype = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True).stdout
        assert fstype.strip() in {"tmpfs", "ramfs"}
        assert is_ram_backed(path)
        st = os.lstat(path)
        assert stat.S_ISDIR(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o700
        assert st.st_uid == os.geteuid()
        assert re.fullmatch(rf"sstest-{os.getpid()}-[0-9a-f]{{12}}", path.name)
        assert path.parent == Path("/dev/shm")
    finally:
        rd.close()
    assert rd.closed
    assert not path.exists()
    rd.close()  # idempotent


def test_context_manager_removes_directory_with_contents() -> None:
    with RamDir(prefix="sstest") as rd:
        f = rd.new_file(".png")
        f.write_bytes(b"plaintext page")
        (rd.path / "sub").mkdir()
        (rd.path / "sub" / "x").write_bytes(b"x")
        path = rd.path
    assert not path.exists()


def test_new_file_is_unique_private_and_inside(ramdir: RamDir) -> None:
    names = {ramdir.new_file(".txt") for _ in range(50)}
    assert len(names) == 50
    for p in names:
        assert p.parent == ramdir.path
        assert p.name.endswith(".txt")
        assert p.exists() and p.stat().st_size == 0
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    with pytest.raises(ValueError):
        ramdir.new_file("/../escape")


def test_new_file_after_close_is_refused() -> None:
    rd = RamDir(prefix="sstest")
    rd.close()
    with pytest.raises(StateError):
        rd.new_file()


def test_disk_directory_is_refused_without_fallback(tmp_path: Path) -> None:
    assert filesystem_type(tmp_path) not in {"tmpfs", "ramfs"}, "test needs tmp_path on disk"
    with pytest.raises(ScanStationError) as info:
        RamDir(prefix="sstest", bases=[tmp_path, tmp_path / "missing"])
    message = str(info.value)
    assert "tmpfs" in message and str(tmp_path) in message and "does not exist" in message
    assert list(tmp_path.iterdir()) == []


def test_second_candidate_is_used_when_first_is_unusable(tmp_path: Path, ramdir: RamDir) -> None:
    base = ramdir.path  # a tmpfs directory standing in for $XDG_RUNTIME_DIR
    with RamDir(prefix="inner", bases=[tmp_path, base]) as rd:
        assert rd.path.parent == base


def test_filesystem_type_uses_longest_and_latest_mount(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw 0 0\n"
        "tmpfs /run/user tmpfs rw 0 0\n"
        "tmpfs /mnt/with\\040space tmpfs rw 0 0\n"
        "tmpfs /srv tmpfs rw 0 0\n"
        "/dev/vdb /srv ext4 rw 0 0\n"
    )
    assert filesystem_type(Path("/run/user/1000"), mounts_file=mounts) == "tmpfs"
    assert filesystem_type(Path("/run/username"), mounts_file=mounts) == "ext4"
    assert filesystem_type(Path("/mnt/with space/x"), mounts_file=mounts) == "tmpfs"
    assert filesystem_type(Path("/srv/data"), mounts_file=mounts) == "ext4"  # mounted over the tmpfs
    with pytest.raises(ScanStationError):
        filesystem_type(Path("/"), mounts_file=tmp_path / "no-such-file")


def test_sweep_stale_removes_only_dead_processes_dirs(ramdir: RamDir) -> None:
    base = ramdir.path
    dead = base / f"sweeptest-{_dead_pid()}-{'a' * 12}"
    alive = base / f"sweeptest-{os.getpid()}-{'b' * 12}"
    other = base / f"othertest-{_dead_pid()}-{'c' * 12}"
    not_a_dir = base / f"sweeptest-{_dead_pid()}-{'d' * 12}"
    for d in (dead, alive, other):
        d.mkdir()
        (d / "page.png").write_bytes(b"plaintext")
    not_a_dir.write_bytes(b"")
    removed = sweep_stale("sweeptest", bases=[base, base / "missing"])
    assert removed == [dead]
    assert not dead.exists()
    assert alive.exists() and other.exists() and not_a_dir.exists()


_CHILD_MAKES_RAMDIR = """
import os, sys, time
from pathlib import Path
from scanstation.vault.ramdir import RamDir
rd = RamDir(prefix=sys.argv[1], bases=[Path(sys.argv[2])])
rd.new_file(".png").write_bytes(b"plaintext")
print(rd.path, flush=True)
if sys.argv[3] == "hang":
    time.sleep(60)
# else: exit normally without close(): the finalizer must still remove the directory
"""


def test_directory_removed_at_normal_exit_and_swept_after_kill_9(ramdir: RamDir) -> None:
    base = ramdir.path
    out = subprocess.run(
        [sys.executable, "-c", _CHILD_MAKES_RAMDIR, "exittest", str(base), "exit"],
        capture_output=True, text=True, env=_child_env(), check=True,
    )
    assert not Path(out.stdout.strip()).exists()

    with subprocess.Popen(
        [sys.executable, "-c", _CHILD_MAKES_RAMDIR, "killtest", str(base), "hang"],
        stdout=subprocess.PIPE, text=True, env=_child_env(),
    ) as child:
        assert child.stdout is not None
        left = Path(child.stdout.readline().strip())
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert left.exists()  # kill -9 runs no cleanup ...
    assert sweep_stale("killtest", bases=[base]) == [left]  # ... so startup sweeps it
    assert not left.exists()


_CHILD_FORKS = """
import os, sys
from pathlib import Path
from scanstation.vault.ramdir import RamDir
rd = RamDir(prefix="forktest", bases=[Path(sys.argv[1])])
pid = os.fork()
if pid == 0:
    sys.exit(0)  # runs the inherited exit-time finalizer in the child
os.waitpid(pid, 0)
print("exists" if rd.path.is_dir() else "gone", flush=True)
rd.close()
print("exists" if rd.path.is_dir() else "gone", flush=True)
"""


def test_forked_child_exit_does_not_remove_parents_directory(ramdir: RamDir) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD_FORKS, str(ramdir.path)], capture_output=True, text=True, env=_child_env()
    )
    assert out.stdout.split() == ["exists", "gone"], out.stderr


@pytest.fixture
def process_tempdir(ramdir: RamDir) -> Iterator[RamDir]:
    restore = set_process_tempdir(ramdir)
    try:
        yield ramdir
    finally:
        restore()


def test_set_process_tempdir_redirects_tempfile(process_tempdir: RamDir) -> None:
    fd, name = tempfile.mkstemp()
    os.close(fd)
    assert Path(name).parent == process_tempdir.path
    with tempfile.NamedTemporaryFile() as f:
        assert Path(f.name).parent == process_tempdir.path
    assert os.environ["TMPDIR"] == str(process_tempdir.path)
    # Child processes (tesseract, ghostscript, python workers) get it through the environment.
    child = subprocess.run(
        [sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"], capture_output=True, text=True
    )
    assert child.stdout.strip() == str(process_tempdir.path)


def test_pytesseract_temp_files_land_in_ramdir(process_tempdir: RamDir) -> None:
    from pytesseract import pytesseract

    image = Image.new("L", (8, 8), 255)
    with pytesseract.save(image) as (base_name, input_name):
        assert Path(base_name).parent == process_tempdir.path
        assert Path(input_name).parent == process_tempdir.path
        assert Path(input_name).exists()


def test_restore_puts_previous_tempdir_back(ramdir: RamDir) -> None:
    before_dir = tempfile.tempdir
    before_env = os.environ.get("TMPDIR")
    restore = set_process_tempdir(ramdir)
    restore()
    assert tempfile.tempdir == before_dir
    assert os.environ.get("TMPDIR") == before_env
