"""The one interface between :class:`agent.snmp.target.SnmpTarget` and an SNMP implementation.

A :class:`Session` is one device's request/response exchange: it sends one GET, GETNEXT or GETBULK
(with its retries) and returns the device's response, or raises an
:class:`agent.snmp.errors.SnmpError`. Everything a device's answer *means* (v1 noSuchName retries,
tooBig, checks that the answer fits the request, walks, max-repetitions adaptation) is the target's,
written once for every session; the way snmp_exporter's ``scraper`` interface and Telegraf's
``Connection`` interface pair one real client with one fake.

Sessions: :class:`agent.snmp.community.CommunitySession` (v1/v2c on our own socket and BER codec, the
fast path) and :class:`agent.snmp.pysnmp_session.PysnmpSession` (SNMPv3, and v1/v2c when the fast path is
off). Unit tests use a fake that answers from a script (tests/unit/test_snmp_target.py).

Lifecycle guarantees a session gives:

* one request at a time (the target never overlaps two); cancelling the caller abandons the request;
* it raises :class:`~agent.snmp.errors.SnmpTimeout` when no usable answer came within its timeout x
  tries, :class:`~agent.snmp.errors.SnmpAuthError` when the device rejected the credentials (SNMPv3),
  :class:`~agent.snmp.errors.SnmpError` for a request it cannot send;
* it returns any response with the request's request-id, whatever its error-status (noError,
  noSuchName, tooBig ...) and whatever its varbinds: the target judges them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from agent.snmp.credentials import Credentials
from agent.snmp.values import OID, SnmpValue


class Reply(Protocol):
    """A device's response to one request."""

    @property
    def error_status(self) -> int: ...

    @property
    def error_index(self) -> int: ...

    @property
    def error_name(self) -> str: ...  # "noError", "tooBig", "noSuchName", ...

    @property
    def varbinds(self) -> list[tuple[OID, SnmpValue]]: ...


class Session(Protocol):
    """One device's SNMP request/response exchange (see the module doc for its guarantees)."""

    @property
    def creds(self) -> Credentials: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    async def get(self, oids: Sequence[OID]) -> Reply: ...

    async def get_next(self, oid: OID) -> Reply: ...

    async def get_bulk(self, oids: Sequence[OID], max_repetitions: int) -> Reply: ...
