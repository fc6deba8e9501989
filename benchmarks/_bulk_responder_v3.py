"""The walk benchmark's responder (benchmarks/_bulk_responder.py) speaking SNMPv3 authPriv: the same
pre-encoded IF-MIB, behind USM (the agent's own agent/snmp/usm.py and usm_crypto.py, used here as an
authoritative engine: the clients compared are pysnmp, gosnmp and ours, so a bug shared by the responder
and our client would show as pysnmp and snmp_exporter failing).

    python -m benchmarks._bulk_responder_v3 --rows 2000

Users (passwords below): ``bench256`` SHA256/AES (128), ``bench512`` SHA512/AES256. Answers engine-ID
discovery with a Report usmStatsUnknownEngineIDs (boots 1, time since start) and a request outside the
150 s window with an authenticated usmStatsNotInTimeWindows; a wrong digest or unknown user is dropped.
Prints ``PORT <n>`` when ready; ``STATS`` answers like the v2c responder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from agent.snmp import usm, usm_crypto
from agent.snmp.ber import int_tlv, tlv
from benchmarks._bulk_responder import Responder, if_mib
from hatang.sim import ber

ENGINE_ID = bytes.fromhex("80001f8804") + b"hatang-bench"
AUTH_PASSWORD = b"bench-auth-pass"
PRIV_PASSWORD = b"bench-priv-pass"
USERS = {b"bench256": ("SHA256", "AES"), b"bench512": ("SHA512", "AES256")}
_NOT_IN_TIME_WINDOW = (1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0)
_UNKNOWN_ENGINE_ID = (1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0)
_V2C_HEAD = b"\x02\x01\x01\x04\x00"


class V3Responder(Responder):
    def __init__(self, table: list[tuple[ber.OID, bytes]]) -> None:
        super().__init__(table)
        self.started = time.monotonic()
        self.salts = usm.Salts(int.from_bytes(os.urandom(8), "big"))
        self.users = {name: usm.UserSecurity(name, auth, AUTH_PASSWORD, priv, PRIV_PASSWORD)
                      for name, (auth, priv) in USERS.items()}
        self.keys = {name: usm.localized_keys(user, ENGINE_ID) for name, user in self.users.items()}

    def _time(self) -> int:
        return int(time.monotonic() - self.started)

    def _reply(self, addr: Any, message: usm.Message, user: usm.UserSecurity | None, pdu: bytes) -> None:
        """Send ``pdu`` in a message answering ``message`` (at the user's level, or noAuthNoPriv)."""
        assert self.transport is not None
        scoped = usm.encode_scoped_pdu(ENGINE_ID, b"", pdu)
        boots, now = 1, self._time()
        salt = b""
        flags = 0
        if user is not None and user.auth:
            keys = self.keys[user.user]
            flags = usm.FLAG_AUTH
            if user.priv and message.encrypted:
                flags |= usm.FLAG_PRIV
                salt = self.salts.next("aes", boots)
                scoped = tlv(0x04, usm_crypto.encrypt("aes", keys.priv, boots, now, salt, scoped))
        datagram, offset = usm.encode_message(message.msg_id, flags, ENGINE_ID, boots, now,
                                              user.user if user else message.user,
                                              user.mac_length if user and flags else 0, salt, scoped)
        if flags and user is not None and user.auth:
            datagram = usm_crypto.sign(usm.AUTH[user.auth][0], self.keys[user.user].auth, user.mac_length,
                                       datagram, offset)
        self.transport.sendto(datagram, addr)

    @staticmethod
    def _report(request_id: int, oid: ber.OID) -> bytes:
        varbind = ber.encode_varbind(oid, ber.counter32(1))
        return tlv(0xA8, int_tlv(request_id) + int_tlv(0) + int_tlv(0) + tlv(0x30, varbind))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        if data == b"STATS":
            self.transport.sendto(json.dumps({"requests": self.requests, "varbinds": self.varbinds}).encode(),
                                  addr)
            return
        try:
            message = usm.decode_message(data)
        except ber.BerError:
            return
        if message.engine_id != ENGINE_ID:
            scoped = usm.decode_scoped_pdu(message.data) if not message.encrypted else None
            request_id = ber.decode_message(tlv(0x30, _V2C_HEAD + scoped.pdu)).pdu.request_id if scoped else 0
            self._reply(addr, message, None, self._report(request_id, _UNKNOWN_ENGINE_ID))
            return
        user = self.users.get(message.user)
        if user is None or not user.auth or not message.encrypted:
            return  # this responder only serves its authPriv users
        keys = self.keys[user.user]
        if not usm_crypto.verify(usm.AUTH[user.auth][0], keys.auth, data, message.mac_offset, message.mac):
            return
        if message.boots != 1 or abs(message.engine_time - self._time()) > 150:
            self._reply(addr, message, user, self._report(0, _NOT_IN_TIME_WINDOW))
            return
        plaintext = usm_crypto.decrypt("aes", keys.priv, message.boots, message.engine_time,
                                       message.priv_params, message.data)
        request = ber.decode_message(tlv(0x30, _V2C_HEAD + usm.decode_scoped_pdu(plaintext).pdu))
        status, index, varbinds = self._answer(request)
        self.requests += 1
        self.varbinds += len(varbinds)
        pdu = tlv(0xA2, int_tlv(request.pdu.request_id) + int_tlv(status) + int_tlv(index)
                  + tlv(0x30, b"".join(varbinds)))
        self._reply(addr, message, user, pdu)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: V3Responder(if_mib(args.rows)),
                                                       local_addr=("127.0.0.1", args.port))
    print("PORT", transport.get_extra_info("sockname")[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
