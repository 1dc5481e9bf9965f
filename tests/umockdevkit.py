"""umockdev for the device guard's tests: a testbed of recorded devices, plugged in one at a time.

There is no USB hardware here, so devices come from umockdev records (``tests/vectors/umockdev/*.umockdev``,
the ``P:``/``E:``/``A:``/``H:`` format ``umockdev-record`` writes).  umockdev's preload library
(``libumockdev-preload.so.0``) makes a process see the testbed as its /sys and /dev and turns its udev
netlink sockets into sockets the testbed sends uevents to; libudev (and so pyudev) cannot tell the
difference.

The testbed lives in a small *bed* process (``python -m tests.umockdevkit``) started under
``umockdev-wrapper``, which drives libumockdev through ctypes (our interpreter is not Debian's, so
PyGObject's ``gi`` is not importable).  It has to be a preloaded process of its own: umockdev's uevent
sender finds the device through libudev, which must see the testbed, and pytest must not.  Because the
bed runs in the mock environment, ``umockdev_testbed_add_from_string`` sends an ``add`` uevent for each
device it adds: that is the hot-plug.  :meth:`Testbed.plug` adds a record file's devices one at a time,
parents first (``umockdev-record`` writes the device first, then its parents), so the events come in the
order the kernel and udevd send them: the USB device, its interfaces, then a disk or network interface.

A process that should see the testbed (the station service) runs with :attr:`Testbed.env` in its
environment.  The PC itself (the USB host controllers, a network card, a system disk, loop and veth
devices) is ``host.umockdev``, loaded before any listener exists; every other file holds one device
without those shared parents, so that all of them fit in one testbed.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent / "vectors" / "umockdev"
PRELOAD = "libumockdev-preload.so.0"
REPO = Path(__file__).resolve().parents[1]


def available() -> str | None:
    """None when umockdev can run here, else what is missing (for pytest.skip)."""
    if shutil.which("umockdev-wrapper") is None:
        return "umockdev-wrapper not installed (apt install umockdev)"
    try:
        ctypes.CDLL("libumockdev.so.0")
    except OSError as e:
        return f"libumockdev.so.0 not loadable: {e}"
    return None


def records(text: str) -> list[str]:
    """The device records of a umockdev file, in file order (blank lines separate them)."""
    return [block.strip() + "\n" for block in text.split("\n\n") if block.strip()]


def devpath_of(record: str) -> str:
    first = record.splitlines()[0]
    if not first.startswith("P: "):
        raise ValueError(f"a umockdev record starts with 'P: /devices/...', not {first!r}")
    return first[3:].strip()


@dataclass
class Plugged:
    """A device plugged into the testbed: its devpaths (parents first) and when each add uevent went."""

    name: str
    devpaths: list[str]
    sent: list[float]  # time.monotonic() just before each device's add (one clock for every process here)

    @property
    def root(self) -> str:
        return self.devpaths[0]


class Testbed:
    """The bed process and the testbed it holds (a context manager)."""

    __test__ = False  # pytest: a helper whose name starts with "Test", not tests

    def __init__(self) -> None:
        why = available()
        if why is not None:
            raise RuntimeError(why)
        env = {k: v for k, v in os.environ.items() if k not in ("UMOCKDEV_DIR", "LD_PRELOAD")}
        env["PYTHONPATH"] = str(REPO)
        self._proc = subprocess.Popen(["umockdev-wrapper", sys.executable, "-m", "tests.umockdevkit"], env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        hello = self._reply()
        self.root = Path(hello["root"])

    @property
    def env(self) -> dict[str, str]:
        """What a process needs in its environment to see this testbed."""
        return {"UMOCKDEV_DIR": str(self.root), "LD_PRELOAD": PRELOAD}

    def _reply(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the umockdev bed process ended (exit {self._proc.wait(timeout=5)})")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"umockdev bed: {reply.get('error')}")
        return reply

    def _call(self, **command: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()
        return self._reply()

    def load(self, name: str) -> list[str]:
        """Add a file's devices (before anything listens: the PC's own devices)."""
        return self.plug(name).devpaths

    def plug(self, name: str) -> Plugged:
        """Hot-plug the device recorded in ``VECTORS/name``: its devices added parent first, an ``add``
        uevent each."""
        parts = list(reversed(records((VECTORS / name).read_text())))
        reply = self._call(cmd="add", records=parts)
        return Plugged(name, [devpath_of(r) for r in parts], reply["sent"])

    def unplug(self, plugged: Plugged) -> None:
        """Take the device away again, children first (libumockdev 0.17's ``remove_device`` of a parent leaves
        its children's /sys/bus links behind, and the same device could not be plugged in again)."""
        for devpath in reversed(plugged.devpaths):
            self._call(cmd="remove", devpath="/sys" + devpath)

    def set(self, devpath: str, *, attributes: dict[str, str] | None = None,
            properties: dict[str, str] | None = None) -> None:
        """Change a device in place (``devpath`` without /sys): sysfs attributes, and udev properties (they go
        into its ``uevent`` file, so the next :meth:`uevent` carries them)."""
        self._call(cmd="set", devpath="/sys" + devpath, attributes=attributes or {}, properties=properties or {})

    def uevent(self, devpath: str, action: str) -> float:
        """Send one uevent for a device already in the testbed (``devpath`` without /sys); returns when."""
        return float(self._call(cmd="uevent", devpath="/sys" + devpath, action=action)["sent"])

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()  # the bed frees the testbed (its directory goes) and ends
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- the bed process
class _GError(ctypes.Structure):
    _fields_ = [("domain", ctypes.c_uint32), ("code", ctypes.c_int), ("message", ctypes.c_char_p)]


def _bed() -> int:
    """Run as ``umockdev-wrapper python -m tests.umockdevkit``: JSON commands on stdin, replies on stdout."""
    lib = ctypes.CDLL("libumockdev.so.0")
    gobject = ctypes.CDLL("libgobject-2.0.so.0")
    glib = ctypes.CDLL("libglib-2.0.so.0")
    lib.umockdev_testbed_new.restype = ctypes.c_void_p
    lib.umockdev_testbed_get_root_dir.restype = ctypes.c_char_p
    lib.umockdev_testbed_get_root_dir.argtypes = [ctypes.c_void_p]
    lib.umockdev_testbed_add_from_string.restype = ctypes.c_int
    lib.umockdev_testbed_add_from_string.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                     ctypes.POINTER(ctypes.POINTER(_GError))]
    lib.umockdev_testbed_uevent.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.umockdev_testbed_remove_device.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.umockdev_testbed_set_attribute.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.umockdev_testbed_set_property.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    gobject.g_object_unref.argtypes = [ctypes.c_void_p]
    glib.g_error_free.argtypes = [ctypes.POINTER(_GError)]

    bed = lib.umockdev_testbed_new()  # sets $UMOCKDEV_DIR here: from now on this process sees the testbed
    root = lib.umockdev_testbed_get_root_dir(bed).decode()

    def reply(**data: Any) -> None:
        print(json.dumps(data), flush=True)

    reply(ok=True, root=root)
    try:
        for line in sys.stdin:
            command = json.loads(line)
            try:
                if command["cmd"] == "add":
                    sent = []
                    for record in command["records"]:
                        err = ctypes.POINTER(_GError)()
                        sent.append(time.monotonic())
                        if not lib.umockdev_testbed_add_from_string(bed, record.encode(), ctypes.byref(err)):
                            message = err.contents.message.decode() if err else "unknown error"
                            if err:
                                glib.g_error_free(err)
                            raise ValueError(f"{devpath_of(record)}: {message}")
                    reply(ok=True, sent=sent)
                elif command["cmd"] == "uevent":
                    sent_at = time.monotonic()
                    lib.umockdev_testbed_uevent(bed, command["devpath"].encode(), command["action"].encode())
                    reply(ok=True, sent=sent_at)
                elif command["cmd"] == "set":
                    path = command["devpath"].encode()
                    for name, value in command["attributes"].items():
                        lib.umockdev_testbed_set_attribute(bed, path, name.encode(), value.encode())
                    for name, value in command["properties"].items():
                        lib.umockdev_testbed_set_property(bed, path, name.encode(), value.encode())
                    reply(ok=True)
                elif command["cmd"] == "remove":
                    lib.umockdev_testbed_remove_device(bed, command["devpath"].encode())
                    # libumockdev 0.17 leaves a removed disk's /sys/block link behind (the disk could not come
                    # back); the kernel removes it with the disk
                    link = Path(root) / "sys" / "block" / Path(command["devpath"]).name
                    if "/block/" in command["devpath"] and link.is_symlink() and not link.exists():
                        link.unlink()
                    reply(ok=True)
                else:
                    reply(ok=False, error=f"unknown command {command['cmd']!r}")
            except (KeyError, ValueError) as e:
                reply(ok=False, error=str(e))
    finally:
        gobject.g_object_unref(bed)  # removes the testbed's directory
    return 0


if __name__ == "__main__":
    sys.exit(_bed())
