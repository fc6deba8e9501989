"""The agent's SNMP client: :class:`SnmpEngine` (one per process) makes an :class:`SnmpTarget` per device.

v1/v2c devices get a :class:`~agent.snmp.community.CommunitySession` (our socket and BER codec, ~8x
cheaper per varbind than pysnmp's object model, differential-tested against it) and SNMPv3 devices a
:class:`~agent.snmp.v3_session.V3Session` (our USM on the same codec, the ciphers from ``cryptography``)
unless the fast path is off; then both get a :class:`~agent.snmp.pysnmp_session.PysnmpSession`. The
SNMPv3 modules (and ``cryptography``) are imported at the first SNMPv3 device, pysnmp only when the
fast path is off. Each engine owns one UDP socket per kind, opened with the first device, with a large
``SO_RCVBUF`` (:data:`RECEIVE_BUFFER_BYTES`; the kernel caps it at ``net.core.rmem_max``, 208 KiB by
default on Linux: raise that sysctl for hundreds of devices in flight).
:attr:`SnmpEngine.receive_buffer` says what the kernel granted.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from agent.snmp.ber import VERSIONS
from agent.snmp.community import CommunitySession, CommunityTransport, resolve
from agent.snmp.credentials import Credentials
from agent.snmp.session import Session
from agent.snmp.target import DEFAULT_MAX_REPETITIONS, SnmpTarget

if TYPE_CHECKING:
    from agent.snmp.pysnmp_session import PysnmpEngine
    from agent.snmp.v3_session import V3Transport

RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024


class SnmpEngine:
    """The SNMP sessions of the whole process: the v1/v2c socket, the SNMPv3 socket and the pysnmp engine."""

    def __init__(self, *, receive_buffer: int = RECEIVE_BUFFER_BYTES, fast_path: bool = True) -> None:
        # pysnmp (about 13 MB of imports) is loaded at the first SNMPv3 target (or v1/v2c with the fast
        # path off): a commune agent polling v2c devices never loads it.
        self._pysnmp: PysnmpEngine | None = None
        self._wanted_buffer = receive_buffer
        self.fast_path = fast_path  # v1/v2c and v3 on our own sockets and codec instead of pysnmp
        self._community: CommunityTransport | None = None
        self._v3: V3Transport | None = None
        self._lock = asyncio.Lock()

    async def target(
        self,
        host: str,
        port: int,
        creds: Credentials,
        *,
        timeout: float,
        retries: int,
        max_repetitions: int = DEFAULT_MAX_REPETITIONS,
        max_walk_time: float | None = None,
    ) -> SnmpTarget:
        """A target for one device. Raises :class:`SnmpError` for an unresolvable address or bad
        credentials (unknown protocol names)."""
        session: Session
        if self.fast_path and creds.version in VERSIONS:  # v1/v2c credentials have nothing to check
            community = await self._ensure_community()
            address = await resolve(host, port)
            session = CommunitySession(community, creds, host, port, address, timeout=timeout,
                                       retries=retries)
        elif self.fast_path and creds.version == "3":
            from agent.snmp.v3_session import V3Session

            v3 = await self._ensure_v3()
            session = V3Session(v3, creds, host, port, await resolve(host, port), timeout=timeout,
                                retries=retries)
        else:
            session = await self._pysnmp_engine().session(host, port, creds, timeout=timeout, retries=retries)
        return SnmpTarget(session, max_repetitions=max_repetitions, max_walk_time=max_walk_time)

    def _pysnmp_engine(self) -> PysnmpEngine:
        if self._pysnmp is None:
            from agent.snmp.pysnmp_session import PysnmpEngine

            self._pysnmp = PysnmpEngine(self._wanted_buffer)
        return self._pysnmp

    async def _ensure_community(self) -> CommunityTransport:
        async with self._lock:
            if self._community is None:
                community = CommunityTransport()
                await community.open(self._wanted_buffer)
                self._community = community
            return self._community

    async def _ensure_v3(self) -> V3Transport:
        async with self._lock:
            if self._v3 is None:
                from agent.snmp.v3_session import V3Transport

                v3 = V3Transport()
                await v3.open(self._wanted_buffer)
                self._v3 = v3
            return self._v3

    @property
    def receive_buffer(self) -> int | None:
        """The SO_RCVBUF the kernel granted (Linux reports twice the ask); None before the first target."""
        for transport in (self._community, self._v3):
            if transport is not None and transport.receive_buffer is not None:
                return transport.receive_buffer
        return self._pysnmp.receive_buffer if self._pysnmp is not None else None

    @property
    def idle(self) -> bool:
        """True when no request is in flight, counting requests whose caller was cancelled (pysnmp
        keeps retransmitting those until their own timeout x tries is over, then drops them)."""
        return ((self._community is None or self._community.idle) and (self._v3 is None or self._v3.idle)
                and (self._pysnmp is None or self._pysnmp.idle))

    @property
    def repaired_datagrams(self) -> int:
        """How many datagrams had negative unsigned integers rewritten (or, on the fast path, read as
        unsigned)."""
        return ((self._pysnmp.repaired if self._pysnmp is not None else 0)
                + (self._community.repaired if self._community is not None else 0))

    def close(self) -> None:
        if self._pysnmp is not None:
            self._pysnmp.close()
        if self._community is not None:
            self._community.close()
            self._community = None
        if self._v3 is not None:
            self._v3.close()
            self._v3 = None
