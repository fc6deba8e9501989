"""Replay snmpsim recordings (``.snmprec`` / ``.snmprec.bz2``) of real devices over UDP.

The recordings come from the PyPI package ``snmpsim-data`` (~116 walks of real switches, routers, UPSes
and hosts). A recording is lines of ``OID|TYPE|VALUE``: TYPE is the BER tag sum (2 Integer, 4 OCTET
STRING, 5 Null, 6 OID, 64 IpAddress, 65 Counter32, 66 Gauge32, 67 TimeTicks, 68 Opaque, 70 Counter64,
128-130 noSuchObject/noSuchInstance/endOfMibView), with an ``x`` suffix when VALUE is hex. A ``:module``
suffix names an snmpsim variation module; ``writecache`` with ``value=...`` is replayed as that static
value, every other variation (dynamic values) is left out and counted in :attr:`Recording.skipped`.
Lines are ISO-8859-1 like snmpsim reads them, so OCTET STRING values keep their exact bytes.

Serving reuses the project's simulator (:class:`hatang.sim.device.SimulatedDevice` with static values
and :func:`hatang.sim.responder.serve_devices`): GET, GETNEXT and GETBULK on 127.0.0.1.
"""

from __future__ import annotations

import binascii
import bisect
import bz2
import importlib.util
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hatang.sim import ber
from hatang.sim.ber import OID, Value
from hatang.sim.device import SimulatedDevice
from hatang.sim.responder import SimulatorHandle, serve_devices

PACKAGE = "snmpsim-data"
_TAGS = {
    2: ber.INTEGER, 4: ber.OCTET_STRING, 5: ber.NULL, 6: ber.OBJECT_IDENTIFIER, 64: ber.IP_ADDRESS,
    65: ber.COUNTER32, 66: ber.GAUGE32, 67: ber.TIMETICKS, 68: ber.OPAQUE, 70: ber.COUNTER64,
    128: ber.NO_SUCH_OBJECT, 129: ber.NO_SUCH_INSTANCE, 130: ber.END_OF_MIB_VIEW,
}
_INT_TAGS = {ber.INTEGER, ber.COUNTER32, ber.GAUGE32, ber.TIMETICKS, ber.COUNTER64}
_RANGES = {ber.INTEGER: (-(2**31), 2**31 - 1), ber.COUNTER32: (0, 2**32 - 1), ber.GAUGE32: (0, 2**32 - 1),
           ber.TIMETICKS: (0, 2**32 - 1), ber.COUNTER64: (0, 2**64 - 1)}


class RecordingError(ValueError):
    """A line of a recording that cannot be replayed."""


@dataclass
class Recording:
    name: str
    values: dict[OID, Value] = field(default_factory=dict)
    skipped: int = 0  # lines with a dynamic variation module or a value out of its type's range

    _sorted: list[OID] = field(default_factory=list, repr=False)

    def column(self, column: OID) -> dict[str, Value]:
        """{row index: value} of every recorded OID under ``column``, in order, like a walk of it."""
        if len(self._sorted) != len(self.values):
            self._sorted = sorted(self.values)
        depth, rows = len(column), {}
        for position in range(bisect.bisect_right(self._sorted, column), len(self._sorted)):
            oid = self._sorted[position]
            if oid[:depth] != column:
                break
            rows[".".join(map(str, oid[depth:]))] = self.values[oid]
        return rows

    def get(self, oid: OID) -> Value | None:
        return self.values.get(oid)


def parse_oid(text: str) -> OID:
    return tuple(int(p) for p in text.strip().strip(".").split("."))


def _value(tag: int, raw: bytes, hexed: bool) -> Value:
    if hexed:
        raw = binascii.unhexlify(raw)
    if tag in _INT_TAGS:
        number = int(raw.decode("ascii"))
        lo, hi = _RANGES[tag]
        if not lo <= number <= hi:
            raise RecordingError(f"{number} out of range for tag 0x{tag:02x}")
        return Value(tag, number)
    if tag == ber.OBJECT_IDENTIFIER:
        return Value(tag, parse_oid(raw.decode("ascii")))
    if tag == ber.IP_ADDRESS and not hexed and raw.count(b".") == 3:
        return Value(tag, bytes(int(p) for p in raw.decode("ascii").split(".")))
    if tag in (ber.OCTET_STRING, ber.IP_ADDRESS, ber.OPAQUE):
        return Value(tag, raw)
    return Value(tag, None)


def parse_snmprec(data: bytes, name: str = "recording") -> Recording:
    """Parse the text of a recording (already decompressed)."""
    recording = Recording(name)
    for number, line in enumerate(data.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(b"#"):
            continue
        try:
            oid_text, tag_text, raw = line.split(b"|", 2)
        except ValueError:
            raise RecordingError(f"{name}:{number}: not OID|TYPE|VALUE") from None
        tag_text, _, module = tag_text.partition(b":")
        if module:
            if module != b"writecache" or not raw.startswith(b"value="):
                recording.skipped += 1
                continue
            raw = raw[len(b"value="):]
        hexed = tag_text.endswith(b"x")
        try:
            tag = _TAGS[int(tag_text.rstrip(b"x"))]
            value = _value(tag, raw, hexed)
        except (KeyError, ValueError, binascii.Error):
            recording.skipped += 1
            continue
        recording.values[parse_oid(oid_text.decode("ascii"))] = value
    return recording


def load_recording(path: Path) -> Recording:
    data = path.read_bytes()
    if path.suffix == ".bz2":
        data = bz2.decompress(data)
    return parse_snmprec(data, path.name.split(".snmprec")[0])


def data_dir() -> Path | None:
    """The ``data`` folder of the installed snmpsim-data package, or None if it is not installed."""
    try:
        spec = importlib.util.find_spec("snmpsim_data")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    return path if path.is_dir() else None


def find_recording(directory: Path, relative: str) -> Path:
    """``network/switch/cisco-c3560`` -> its .snmprec or .snmprec.bz2 file under ``directory``."""
    for suffix in (".snmprec", ".snmprec.bz2"):
        path = directory / f"{relative}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no recording {relative}.snmprec[.bz2] under {directory}")


def device(recording: Recording, overrides: Mapping[OID, Value] | None = None) -> SimulatedDevice:
    """A simulated device answering with the recorded values (plus ``overrides``)."""
    table: dict[OID, Value] = {**recording.values, **(overrides or {})}
    return SimulatedDevice(recording.name, table)


async def serve(devices: Sequence[SimulatedDevice], community: str = "public") -> SimulatorHandle:
    """Serve each device on its own UDP port of 127.0.0.1; close the handle to stop."""
    return await serve_devices(devices, "127.0.0.1", community)


def number(value: Value | None) -> float | None:
    """A recorded integer value, or a number written as text (DisplayString readings, as UCD-SNMP-MIB
    laLoad and some UPS cards send); None otherwise. The tests' oracle, independent of the agent."""
    if value is None:
        return None
    if value.tag in _INT_TAGS and isinstance(value.value, int):
        return value.value
    if value.tag == ber.OCTET_STRING and isinstance(value.value, bytes):
        try:
            parsed = float(value.value.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None
        return parsed if math.isfinite(parsed) else None
    return None
