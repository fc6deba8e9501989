"""A fast SNMP v2c responder for the walk benchmark: a large IF-MIB (ifTable + ifXTable) served from
pre-encoded varbinds, so that the clients being compared, not the responder, are the bottleneck.

    python -m benchmarks._bulk_responder --rows 2000

Prints ``PORT <n>`` when ready and serves until killed. Every response is cached by (request OIDs,
non-repeaters, max-repetitions); only the request-id is spliced in, so answering costs a dict lookup
and one bytes join. A datagram ``STATS`` gets a JSON answer with the requests and varbinds served.
Values are static: the benchmark measures the cost of reading varbinds, not of changing numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
from typing import Any

from hatang.sim import ber
from hatang.sim.ber import OID

IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_TABLE = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)


def if_mib(rows: int) -> list[tuple[OID, bytes]]:
    """(OID, encoded varbind) of ifTable columns 1-22 and ifXTable columns 1-19 for ``rows`` interfaces,
    sorted by OID."""
    out: list[tuple[OID, bytes]] = []

    def add(o: OID, v: ber.Value) -> None:
        out.append((o, ber.encode_varbind(o, v)))

    for i in range(1, rows + 1):
        name = f"GigabitEthernet1/0/{i}"
        cells: dict[int, ber.Value] = {
            1: ber.integer(i), 2: ber.octets(name), 3: ber.integer(6), 4: ber.integer(1500),
            5: ber.gauge32(1_000_000_000), 6: ber.octets(bytes((0, 0x1B, 0x54, i >> 16 & 255, i >> 8 & 255,
                                                                i & 255))),
            7: ber.integer(1), 8: ber.integer(1 if i % 7 else 2), 9: ber.timeticks(12_345 + i),
            10: ber.counter32(3_000_000_000 + i), 11: ber.counter32(1_000_000 + i), 12: ber.counter32(i),
            13: ber.counter32(i % 5), 14: ber.counter32(i % 3), 15: ber.counter32(0),
            16: ber.counter32(2_500_000_000 + i), 17: ber.counter32(900_000 + i), 18: ber.counter32(i),
            19: ber.counter32(0), 20: ber.counter32(i % 2), 21: ber.gauge32(0), 22: ber.oid((0, 0)),
        }
        for column, value in cells.items():
            add((*IF_TABLE, column, i), value)
        xcells: dict[int, ber.Value] = {
            1: ber.octets(f"Gi1/0/{i}"), 2: ber.counter32(10 * i), 3: ber.counter32(20 * i),
            4: ber.counter32(30 * i), 5: ber.counter32(40 * i), 6: ber.counter64(2**40 + 1_000_003 * i),
            7: ber.counter64(2**33 + 7_919 * i), 8: ber.counter64(1_000 * i), 9: ber.counter64(2_000 * i),
            10: ber.counter64(2**41 + 999_983 * i), 11: ber.counter64(2**34 + 7_907 * i),
            12: ber.counter64(3_000 * i), 13: ber.counter64(4_000 * i), 14: ber.integer(1),
            15: ber.gauge32(1000), 16: ber.integer(2), 17: ber.integer(1),
            18: ber.octets(f"Phòng một cửa xã, cổng {i}"), 19: ber.timeticks(0),
        }
        for column, value in xcells.items():
            add((*IFX_TABLE, column, i), value)
    out.sort()
    return out


class Responder(asyncio.DatagramProtocol):
    def __init__(self, table: list[tuple[OID, bytes]], max_bytes: int = 65_000) -> None:
        self.oids = [o for o, _ in table]
        self.encoded = [e for _, e in table]
        self.max_bytes = max_bytes
        self.cache: dict[tuple[Any, ...], tuple[int, int, list[bytes]]] = {}
        self.requests = 0
        self.varbinds = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _next_index(self, o: OID) -> int:
        return bisect.bisect_right(self.oids, o)

    def _answer(self, message: ber.Message) -> tuple[int, int, list[bytes]]:
        pdu = message.pdu
        key = (pdu.tag, pdu.error_status, pdu.error_index, tuple(o for o, _ in pdu.varbinds))
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        end_of_mib = ber.END_OF_MIB_VIEW_VALUE
        out: list[bytes] = []
        if pdu.tag == ber.GET_BULK_REQUEST:
            size = 0
            for start, _ in pdu.varbinds:  # non-repeaters are not used by the clients compared here
                i = self._next_index(start)
                for _ in range(max(1, pdu.max_repetitions)):
                    if i >= len(self.oids):
                        out.append(ber.encode_varbind(start, end_of_mib))
                        break
                    size += len(self.encoded[i])
                    if size > self.max_bytes:
                        break
                    out.append(self.encoded[i])
                    i += 1
        elif pdu.tag == ber.GET_NEXT_REQUEST:
            for start, _ in pdu.varbinds:
                i = self._next_index(start)
                out.append(self.encoded[i] if i < len(self.oids) else ber.encode_varbind(start, end_of_mib))
        else:
            for o, _ in pdu.varbinds:
                i = bisect.bisect_left(self.oids, o)
                found = i < len(self.oids) and self.oids[i] == o
                out.append(self.encoded[i] if found else ber.encode_varbind(o, ber.NO_SUCH_INSTANCE_VALUE))
        result = (0, 0, out)
        self.cache[key] = result
        return result

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        if data == b"STATS":
            self.transport.sendto(json.dumps({"requests": self.requests, "varbinds": self.varbinds}).encode(),
                                  addr)
            return
        try:
            message = ber.decode_message(data)
        except ber.BerError:
            return
        status, index, varbinds = self._answer(message)
        self.requests += 1
        self.varbinds += len(varbinds)
        self.transport.sendto(ber.encode_message_parts(message.version, message.community, ber.RESPONSE,
                                                       message.pdu.request_id, status, index, varbinds), addr)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: Responder(if_mib(args.rows)),
                                                       local_addr=("127.0.0.1", args.port))
    print("PORT", transport.get_extra_info("sockname")[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
