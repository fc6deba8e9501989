"""`hatang poll` (the installed command, as a process) against a simulated UPS/router whose values are the
ones real equipment sends and hatang used to publish wrongly (issue #10): -1 for "unknown", a load of
4294967295, ifHighSpeed 0 beside a real ifSpeed, an overflowed hrStorageSize, an Opaque float, an OCTET
STRING where a counter belongs, and MIBs the device does not have."""

from __future__ import annotations

import asyncio
import re
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatang.sim.ber import COUNTER64, INTEGER, TIMETICKS, Value, gauge32, integer, octets, opaque
from hatang.sim.device import SimulatedDevice
from hatang.sim.responder import serve_devices
from tests.support.hatang import run_hatang, write_yaml

pytestmark = pytest.mark.integration

SYSTEM = "1.3.6.1.2.1.1"
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"
UPS = "1.3.6.1.2.1.33.1"
HR_STORAGE = "1.3.6.1.2.1.25.2.3.1"
FLOAT_TEMP = "1.3.6.1.4.1.99999.1.1.0"  # a vendor temperature as net-snmp's Opaque float


def _oid(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _device() -> SimulatedDevice:
    table: dict[str, Value] = {
        f"{SYSTEM}.1.0": octets("Smart-UPS 3000 network card"),
        f"{SYSTEM}.3.0": Value(TIMETICKS, 123_456),
        f"{SYSTEM}.5.0": octets("ups-tang-1"),
        # a 2 Mb/s serial line reports ifHighSpeed 0; a gigabit port reports both
        f"{IF}.1.1": integer(1), f"{IF}.1.2": integer(2),
        f"{IF}.2.1": octets("Serial0/0"), f"{IF}.2.2": octets("Gi0/1"),
        f"{IF}.5.1": gauge32(2_048_000), f"{IF}.5.2": gauge32(4_294_967_295),
        f"{IF}.8.1": integer(1), f"{IF}.8.2": integer(1),
        f"{IFX}.1.1": octets("Se0/0"), f"{IFX}.1.2": octets("Gi0/1"),
        f"{IFX}.6.1": octets("n/a"),  # an OCTET STRING where ifHCInOctets (a Counter64) belongs
        f"{IFX}.6.2": Value(COUNTER64, 2**40),
        f"{IFX}.15.1": gauge32(0), f"{IFX}.15.2": gauge32(1000),
        # UPS-MIB: "unknown" runtime, charge and temperature; an impossible load on line 1
        f"{UPS}.2.1.0": integer(2), f"{UPS}.2.3.0": integer(-1), f"{UPS}.2.4.0": integer(-1),
        f"{UPS}.2.7.0": integer(-1), f"{UPS}.4.1.0": integer(3),
        f"{UPS}.4.4.1.5.1": Value(INTEGER, 4_294_967_295),  # as some cards encode it: 02 05 00 ff ff ff ff
        f"{UPS}.4.4.1.5.2": integer(42),
        # HOST-RESOURCES: a 10 TiB volume in 4 kB units, overflowed to a negative Integer32
        f"{HR_STORAGE}.3.1": octets("/srv"), f"{HR_STORAGE}.4.1": integer(4096),
        f"{HR_STORAGE}.5.1": integer(10 * 2**40 // 4096 - 2**32), f"{HR_STORAGE}.6.1": integer(1000),
        FLOAT_TEMP: opaque(b"\x9f\x78\x04" + struct.pack(">f", 36.5)),
    }
    return SimulatedDevice("ups-tang-1", {_oid(k): v for k, v in table.items()})


@pytest.fixture
def device_port() -> Iterator[int]:
    """The simulated device served on a loopback UDP port from a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with await serve_devices([_device()]) as handle:
                port.append(handle.endpoints[0].port)
                ready.set()
                await stop.wait()
        finally:
            ready.set()  # a failure to start ends the wait at once

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10) and port, "simulated device did not start"
    yield port[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def _config(tmp_path: Path, port: int) -> Path:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    write_yaml(profiles / "vendor_temp.yaml", {
        "name": "vendor_temp",
        "scalars": [{"name": "vendor_temperature_celsius", "type": "gauge", "oid": FLOAT_TEMP,
                     "help": "A vendor temperature sent as an Opaque float."}],
    })
    return write_yaml(tmp_path / "agent.yaml", {
        "agent_id": "xa-tam-dao", "site": {"province": "Vĩnh Phúc", "commune": "Tam Đảo"},
        "mqtt": {"url": "mqtt://127.0.0.1:1"}, "buffer": {"path": str(tmp_path / "buf")},
        "profiles_dir": str(profiles),
        "devices": [{"name": "ups", "address": "127.0.0.1", "port": port,
                     "profiles": ["system", "interfaces", "ups", "host", "sensors", "vendor_temp"],
                     "snmp": {"timeout": 1, "retries": 1}}],
    })


def _value(out: str, metric: str, **labels: str) -> float | None:
    for line in out.splitlines():
        if line.startswith(metric + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_poll_publishes_what_the_values_mean_and_reports_what_it_cannot_use(tmp_path: Path,
                                                                             device_port: int) -> None:
    result = run_hatang(["poll", "-c", str(_config(tmp_path, device_port)), "--device", "ups"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "status: UP" in out
    # ifSpeed where ifHighSpeed is 0; ifHighSpeed where it is set
    assert _value(out, "hatang_interface_speed_bytes", if_name="Se0/0") == 256_000
    assert _value(out, "hatang_interface_speed_bytes", if_name="Gi0/1") == 125_000_000
    # "unknown" readings are absent, not -60 s, -1 %, -1 °C
    for metric in ("hatang_ups_battery_runtime_seconds", "hatang_ups_battery_charge_ratio",
                   "hatang_ups_battery_temperature_celsius"):
        assert metric + "{" not in out
    assert _value(out, "hatang_ups_output_load_ratio", line="2") == 0.42
    assert _value(out, "hatang_ups_output_load_ratio", line="1") is None
    assert _value(out, "hatang_host_storage_size_bytes", mount="/srv") == 10 * 2**40
    assert _value(out, "vendor_temperature_celsius") == 36.5
    assert _value(out, "hatang_interface_in_bytes_total", if_name="Gi0/1") == 2**40
    assert _value(out, "hatang_interface_in_bytes_total", if_name="Se0/0") is None
    # every problem named, with its reason, and counted
    assert re.search(r"profile ups \[bad_value\]: 1 value\(s\) could not be used.*INTEGER 4294967295 "
                     r"outside the Integer32 range", out)
    assert re.search(r"profile interfaces \[bad_value\]: .*OCTET STRING 'n/a' where a number is expected",
                     out)
    assert re.search(r"profile sensors \[empty_profile\]: returned no data although the device answered",
                     out)
    assert _value(out, "hatang_device_poll_errors_total", reason="bad_value") == 2
    assert _value(out, "hatang_device_poll_errors_total", reason="empty_profile") == 1
    assert _value(out, "hatang_device_poll_errors_total", reason="timeout") == 0
