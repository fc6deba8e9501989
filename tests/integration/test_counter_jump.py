"""A counter jump fed by a real SNMP responder (issue #17, "Counter sanity").

The project's simulator (hatang/sim) serves a 24-port switch on 127.0.0.1 whose counters grow with a fake
clock at realistic per-port rates (one port flapping, some down, 100 Mb/s and 1 Gb/s ports); its uplink's
ifHCInOctets leaps by a petabyte between two polls, far more than its ifHighSpeed (1000 Mb/s) allows.
The real SNMP client and DevicePoller poll it every minute of fake time: the jump is counted once in
hatang_interface_counter_jumps_total (for that interface only), logged once, and the device's value is
published unchanged; normal growth counts nothing, nor do 32-bit counters wrapping.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import pytest

from agent.counter_sanity import COUNTER_JUMPS_METRIC
from agent.poller import DevicePoller, PollOutcome
from agent.profiles import load_profiles
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpError, SnmpTimeout
from hatang.sim.ber import COUNTER64, OID, Value, gauge32
from hatang.sim.device import IF_ENTRY, IFX_ENTRY, Provider, SimulatedDevice, make_switch
from hatang.sim.responder import serve_devices
from wire.codec import decode_batch, encode_batch
from wire.messages import PollBatch

pytestmark = pytest.mark.integration

PORTS = 24
UPLINK = PORTS  # make_switch: the last port is the uplink, 1 Gb/s
INTERVAL = 60.0
JUMP_AT = 90.0  # between the polls at 60 s and 120 s of fake time
JUMP = 2**50  # a petabyte in a minute on a gigabit port
HC_IN = (*IFX_ENTRY, 6)  # IF-MIB::ifHCInOctets
HC_COLUMNS = range(6, 14)  # IF-MIB::ifHCInOctets .. ifHCOutBroadcastPkts
IF_HIGH_SPEED = (*IFX_ENTRY, 15)
IF_IN_OCTETS = (*IF_ENTRY, 10)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


def rebuilt(base: SimulatedDevice, clock: FakeTime, *, without: Callable[[OID], bool] = lambda oid: False,
            overrides: Mapping[OID, Provider] | None = None) -> SimulatedDevice:
    """``base``'s table read through its public lookups, minus ``without`` and with ``overrides``."""
    table: dict[OID, Provider] = {}
    for oid in base.oids:
        if not without(oid):
            table[oid] = lambda t, oid=oid: _value(base, oid, t)  # type: ignore[misc]
    table.update(overrides or {})
    return SimulatedDevice(base.name, table, clock=clock, start=base.start)


def _value(device: SimulatedDevice, oid: OID, t: float) -> Value:
    value = device.get(oid, t)
    assert value is not None
    return value


def jumping_switch(clock: FakeTime) -> SimulatedDevice:
    base = make_switch("sw-xa-dai-dinh", PORTS, seed=17, clock=clock)
    uplink_in = (*HC_IN, UPLINK)

    def leaping(t: float) -> Value:
        counted = _value(base, uplink_in, t).value
        assert isinstance(counted, int)
        return Value(COUNTER64, (counted + (JUMP if t >= JUMP_AT else 0)) % 2**64)

    return rebuilt(base, clock, overrides={uplink_in: leaping})


@asynccontextmanager
async def polled(device: SimulatedDevice, clock: FakeTime) -> AsyncIterator[DevicePoller]:
    handle = await serve_devices([device], "127.0.0.1")
    engine = SnmpEngine()
    try:
        target = await engine.target("127.0.0.1", handle.endpoints[0].port, Credentials("2c", "public"),
                                     timeout=2.0, retries=1)
        profiles = load_profiles()
        yield DevicePoller(device.name, target, [profiles["system"], profiles["interfaces"]], deadline=60.0,
                           timeout_errors=(SnmpTimeout,), snmp_errors=(SnmpError,), clock=clock,
                           monotonic=clock)
    finally:
        engine.close()
        handle.close()


def jumps(outcome: PollOutcome) -> dict[int, float]:
    [family] = [f for f in outcome.published if f.name == COUNTER_JUMPS_METRIC]
    assert family.type == "counter"
    return {int(dict(s.labels)["if_index"]): s.value for s in family.samples}


def published_value(outcome: PollOutcome, name: str, if_index: int) -> float:
    [family] = [f for f in outcome.published if f.name == name]
    [value] = [s.value for s in family.samples if dict(s.labels)["if_index"] == str(if_index)]
    return value


def jump_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if COUNTER_JUMPS_METRIC in r.getMessage()]


async def test_a_jump_beyond_if_high_speed_is_counted_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hatang.agent")
    clock = FakeTime()
    device = jumping_switch(clock)
    # the uplink's speed, read from the device independently of the profile: ifHighSpeed in Mb/s
    assert device.get((*IF_HIGH_SPEED, UPLINK)) == gauge32(1000)  # 1000 Mb/s
    nothing = dict.fromkeys(range(1, PORTS + 1), 0)
    async with polled(device, clock) as poller:
        outcomes = []
        for _ in range(5):  # at 0, 60, 120, 180, 240 s of fake time
            outcome = await poller.poll()
            assert outcome.up and outcome.errors == (), outcome.errors
            outcomes.append(outcome)
            clock.now += INTERVAL
    first, normal, leapt, *after = outcomes
    assert jumps(first) == nothing  # every interface from the first poll, at 0
    assert jumps(normal) == nothing  # a minute of realistic traffic on every port, the flapping one too
    assert jumps(leapt) == {**nothing, UPLINK: 1}
    for outcome in after:  # growing normally from the leapt value: nothing more
        assert jumps(outcome) == {**nothing, UPLINK: 1}

    # the device's value is published unchanged (the dashboards clamp): the simulator's at that poll
    served = device.get((*HC_IN, UPLINK), leapt.ts - device.start)
    assert served is not None and isinstance(served.value, int) and served.value > JUMP
    assert published_value(leapt, "hatang_interface_in_bytes_total", UPLINK) == served.value
    lines = jump_lines(caplog)
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    message = lines[0].getMessage()
    assert message.startswith(f"device sw-xa-dai-dinh interface Gi0/{UPLINK} (if_index {UPLINK}): ")
    assert "hatang_interface_in_bytes_total went from" in message and "on a speed of 1 Gb/s" in message

    # the counter travels with the poll, through the wire format
    batch = PollBatch(agent="xa-test", boot_id="b" * 32, seq=1, ts=leapt.ts, device=poller.name,
                      interval=INTERVAL, up=True, duration=leapt.duration, families=leapt.published)
    decoded = {f.name: f for f in decode_batch(encode_batch(batch)).families}
    travelled = {dict(s.labels)["if_index"]: s.value for s in decoded[COUNTER_JUMPS_METRIC].samples}
    assert travelled[str(UPLINK)] == 1


async def test_32_bit_counters_wrapping_are_not_jumps(caplog: pytest.LogCaptureFixture) -> None:
    """A switch without ifXTable's HC counters: the poller publishes the 32-bit ones, which wrap on the
    uplink every few minutes; twenty polls two minutes apart see several wraps and no jump."""
    caplog.set_level(logging.INFO, logger="hatang.agent")
    clock = FakeTime()
    base = make_switch("sw-32bit", PORTS, seed=17, clock=clock)
    device = rebuilt(base, clock, without=lambda oid: oid[:-2] == IFX_ENTRY and oid[-2] in HC_COLUMNS)
    readings = []
    async with polled(device, clock) as poller:
        for _ in range(20):
            outcome = await poller.poll()
            assert outcome.up
            assert set(jumps(outcome).values()) == {0}
            readings.append(published_value(outcome, "hatang_interface_in_bytes_total", UPLINK))
            # the 32-bit column, read from the simulator independently of the poller
            value = device.get((*IF_IN_OCTETS, UPLINK), clock.now - device.start)
            assert value is not None and readings[-1] == value.value
            clock.now += 2 * INTERVAL
    wraps = sum(1 for old, new in itertools.pairwise(readings) if new < old)
    assert wraps >= 2, readings
    assert jump_lines(caplog) == []
