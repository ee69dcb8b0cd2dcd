"""Android transport: run TFLite's ``benchmark_model`` on a phone over ``adb``.

Every ``adb`` call is an argument list (no local shell). ``adb shell`` hands its command to the
phone's shell as one string, so the remote command is built with :func:`shlex.join` from values
this module controls or validates (remote paths derived from a content hash, a numeric thread
count, a hex CPU mask). Named devices map to adb serials through a small devices file::

    # ~/.config/ofa-edge/devices.conf   (or $OFA_EDGE_DEVICES, or --option devices_file=...)
    pixel1 = FA6A10301234
    lab-s21 = R5CR1234XYZ
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import OFAEdgeError
from .benchmark_model_output import BenchmarkTimings, parse_timings

REMOTE_DIR = "/data/local/tmp/ofa_edge"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SERIAL = re.compile(r"^\S+$")
_MASK = re.compile(r"^[0-9a-fA-F]+$")


class AdbError(OFAEdgeError):
    """adb failed, or a device is unknown."""


def default_devices_file() -> Path:
    env = os.environ.get("OFA_EDGE_DEVICES")
    return Path(env) if env else Path.home() / ".config" / "ofa-edge" / "devices.conf"


def parse_devices_file(text: str, source: str = "devices file") -> dict[str, str]:
    """``name = serial`` lines (``#`` comments, blank lines, optional quotes) -> {name: serial}."""
    devices: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, serial = (part.strip() for part in line.partition("="))
        serial = serial.strip("\"'")
        if not sep or not _NAME.match(name) or not serial or not _SERIAL.match(serial):
            raise AdbError(f"{source}:{number}: expected 'name = SERIAL', got {raw.strip()!r}")
        devices[name] = serial
    return devices


def resolve_serial(device: str, devices_file: Path | None = None) -> str:
    path = Path(devices_file) if devices_file else default_devices_file()
    try:
        devices = parse_devices_file(path.read_text(), str(path))
    except FileNotFoundError:
        raise AdbError(
            f"device '{device}' is not named in {path} (create it with a line '{device} = SERIAL'; "
            "serials: adb devices)"
        ) from None
    if device not in devices:
        known = ", ".join(sorted(devices)) or "none"
        raise AdbError(f"device '{device}' is not in {path} (named there: {known}); add '{device} = SERIAL'")
    return devices[device]


@dataclass(frozen=True)
class AdbDevice:
    """One phone, addressed by serial."""

    serial: str
    adb: str = "adb"
    timeout_s: float = 600.0

    def run(self, *args: str) -> str:
        command = [self.adb, "-s", self.serial, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except FileNotFoundError:
            raise AdbError(f"'{self.adb}' not found: install adb (apt-get install adb) or pass adb=PATH") from None
        except subprocess.TimeoutExpired:
            raise AdbError(f"adb {args[0]} on {self.serial} timed out after {self.timeout_s:.0f} s") from None
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise AdbError(f"adb {args[0]} on {self.serial} failed: {message[-1] if message else done.returncode}")
        return done.stdout

    def shell(self, *argv: str) -> str:
        return self.run("shell", shlex.join(argv))

    def push(self, local: Path, remote: str) -> None:
        self.run("push", str(local), remote)

    def model(self) -> str:
        return self.shell("getprop", "ro.product.model").strip()

    def push_content_addressed(self, local: Path, suffix: str) -> str:
        """Push ``local`` under a name derived from its bytes; return the remote path."""
        digest = hashlib.sha256(Path(local).read_bytes()).hexdigest()[:16]
        remote = f"{REMOTE_DIR}/{digest}{suffix}"
        self.shell("mkdir", "-p", REMOTE_DIR)
        self.push(local, remote)
        return remote


@dataclass
class BenchmarkModelRunner:
    """Runs ``benchmark_model`` (the user's binary, pushed once) with fixed threads and CPU affinity."""

    device: AdbDevice
    binary: Path
    threads: int = 1
    affinity: str = "f0"  # taskset mask; f0 = CPUs 4-7, the big cores on many phones
    use_xnnpack: bool = True
    _remote_binary: str | None = None

    def __post_init__(self) -> None:
        if not _MASK.match(self.affinity):
            raise AdbError(f"CPU affinity mask must be hex (like f0), got {self.affinity!r}")
        if int(self.threads) < 1:
            raise AdbError(f"threads must be at least 1, got {self.threads}")

    def remote_binary(self) -> str:
        if self._remote_binary is None:
            if not Path(self.binary).is_file():
                raise AdbError(
                    f"benchmark_model binary not found: {self.binary} (build or download TFLite's "
                    "benchmark_model for the phone's ABI)"
                )
            remote = f"{REMOTE_DIR}/benchmark_model"
            self.device.shell("mkdir", "-p", REMOTE_DIR)
            self.device.push(Path(self.binary), remote)
            self.device.shell("chmod", "755", remote)
            self._remote_binary = remote
        return self._remote_binary

    def benchmark(self, model: Path, warmup: int, runs: int) -> BenchmarkTimings:
        remote_model = self.device.push_content_addressed(model, ".tflite")
        output = self.device.shell(
            "taskset",
            self.affinity,
            self.remote_binary(),
            f"--graph={remote_model}",
            f"--num_threads={int(self.threads)}",
            f"--warmup_runs={int(warmup)}",
            f"--num_runs={int(runs)}",
            f"--use_xnnpack={'true' if self.use_xnnpack else 'false'}",
        )
        return parse_timings(output)
