"""The loopback services ``hatang demo`` runs beside its simulated devices.

- :func:`open_gateway`: a TCP listener standing in for the government-network gateway, which every
  office's link probe (agent ``probes:``, method tcp) connects to;
- :func:`send_link_traps`: SNMPv2c linkDown/linkUp traps (RFC 2863) from the flapping switch port, sent
  to an agent's trap listener at each change of the port's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from hatang.sim.ber import OID, encode_message, integer, make_trap_v2
from hatang.sim.device import IF_ENTRY, SYSTEM, Flap, SimulatedDevice

LINK_DOWN: OID = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
LINK_UP: OID = (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)
log = logging.getLogger("hatang.demo")


async def _close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def open_gateway(host: str = "127.0.0.1") -> tuple[asyncio.Server, int]:
    """A TCP listener on a free port of ``host`` that accepts and closes connections; (server, port)."""
    server = await asyncio.start_server(_close_at_once, host, 0)
    return server, int(server.sockets[0].getsockname()[1])


def link_trap(device: SimulatedDevice, if_index: int, up: bool, request_id: int,
              community: bytes = b"public") -> bytes:
    """An encoded linkUp/linkDown trap of ``device``: sysUpTime, ifIndex, ifAdminStatus, ifOperStatus."""
    uptime = device.get((*SYSTEM, 3, 0))
    ticks = uptime.value if uptime is not None and isinstance(uptime.value, int) else 0
    varbinds = (((*IF_ENTRY, 1, if_index), integer(if_index)), ((*IF_ENTRY, 7, if_index), integer(1)),
                ((*IF_ENTRY, 8, if_index), integer(1 if up else 2)))
    return encode_message(make_trap_v2(community, request_id, ticks, LINK_UP if up else LINK_DOWN, varbinds))


def next_change(flap: Flap, t: float) -> float:
    """The device time of the flap's next change of state after ``t``."""
    k, r = divmod(t, flap.period)
    up_for = flap.period - flap.down
    return k * flap.period + (up_for if r < up_for else flap.period)


async def send_link_traps(stop: asyncio.Event, device: SimulatedDevice, flap: Flap, if_index: int,
                          target: tuple[str, int]) -> int:
    """Until ``stop``: at each change of the flapping port, a trap to ``target`` from 127.0.0.1 (the
    device's address). Returns the number of traps sent."""
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        while not stop.is_set():
            t = device.now()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=next_change(flap, t) - t + 0.05)
                break
            sent += 1
            up = flap.is_up(device.now())
            try:
                sock.sendto(link_trap(device, if_index, up, sent), target)
            except OSError as exc:  # the agent's listener is not there (yet): the next change tries again
                log.debug("demo trap not sent: %s", exc)
    return sent
