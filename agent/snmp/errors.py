"""Why an SNMP request failed: the error classes and the messages an operator reads. No pysnmp here.

Every :class:`SnmpError` carries a machine-readable ``reason`` (a class attribute) so that the poller
can count problems by reason (``hatang_device_poll_errors_total{reason}``); the message is for a person.

============================  ==================  ========================================================
class                         ``reason``          meaning
============================  ==================  ========================================================
:class:`SnmpError`            ``snmp_error``      anything else: an error-status such as ``genErr``, an
                                                  unknown protocol name, an OID that BER cannot carry
:class:`SnmpTimeout`          ``timeout``         no usable answer in time (see below)
:class:`SnmpAuthError`        ``auth``            the device rejected our credentials or our access
:class:`SnmpAddressError`     ``address``         the device's address cannot be resolved or used
:class:`SnmpWrongOid`         ``wrong_oid``       the response does not answer the request: a GET answered
                                                  with other OIDs (or in another order, or another number
                                                  of varbinds), a GETNEXT not answered with exactly one
                                                  varbind, a GETBULK answered with none (a buggy agent)
:class:`SnmpNotIncreasing`    ``not_increasing``  a walk got an OID not greater than the one before it
                                                  (net-snmp: "OID not increasing"): the agent loops, echoes
                                                  the requested OID, or goes backwards
:class:`SnmpTooManyRows`      ``too_many_rows``   a walk went past its row cap
:class:`SnmpWalkTooLong`      ``walk_time``       a walk went past its time cap
============================  ==================  ========================================================

:class:`SnmpNotIncreasing`, :class:`SnmpTooManyRows` and :class:`SnmpWalkTooLong` are
:class:`SnmpWalkError` (a walk was abandoned). :data:`ERROR_REASONS` lists every reason.

:class:`SnmpTimeout`: a v1/v2c device does not answer a wrong community and net-snmp drops a v3 request
it cannot decrypt (wrong privacy password or protocol), so both look like a timeout; the message says
so. When datagrams did arrive from the device but could not be used (malformed BER, an answer with
another request-id, community or SNMP version), the message says that too. :class:`SnmpAuthError`:
unknown user, wrong authentication password or protocol, a security level the user lacks, a privacy
protocol the device does not support, or ``authorizationError``/``noAccess``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from agent.snmp.credentials import Credentials
from agent.snmp.values import OID, oid_text


class SnmpError(Exception):
    """An SNMP request failed; ``reason`` says why in one word (see the module doc)."""

    reason: ClassVar[str] = "snmp_error"


class SnmpTimeout(SnmpError):
    """No usable answer in time (also what a wrong community or a wrong v3 privacy password looks like)."""

    reason: ClassVar[str] = "timeout"


class SnmpAuthError(SnmpError):
    """The device rejected our credentials or our access (SNMPv3 user, password, security level)."""

    reason: ClassVar[str] = "auth"


class SnmpAddressError(SnmpError):
    """The device's address cannot be resolved or used."""

    reason: ClassVar[str] = "address"


class SnmpWrongOid(SnmpError):
    """The response does not answer the request: other OIDs, another order or number of varbinds."""

    reason: ClassVar[str] = "wrong_oid"


class SnmpWalkError(SnmpError):
    """A walk was abandoned (the base of the three classes below)."""


class SnmpNotIncreasing(SnmpWalkError):
    """A walk got an OID not greater than the one before it: the agent loops or goes backwards."""

    reason: ClassVar[str] = "not_increasing"


class SnmpTooManyRows(SnmpWalkError):
    """A walk went past its row cap."""

    reason: ClassVar[str] = "too_many_rows"


class SnmpWalkTooLong(SnmpWalkError):
    """A walk went past its time cap."""

    reason: ClassVar[str] = "walk_time"


ERROR_REASONS = tuple(dict.fromkeys(cls.reason for cls in (
    SnmpError, SnmpTimeout, SnmpAuthError, SnmpAddressError, SnmpWrongOid, SnmpNotIncreasing,
    SnmpTooManyRows, SnmpWalkTooLong)))


# ------------------------------------------------------------------------------ errors of one request


def timeout_error(where: str, creds: Credentials, timeout: float, tries: int, datagrams: int) -> SnmpTimeout:
    """No usable answer to a request sent ``tries`` times; ``datagrams`` arrived from the device meanwhile."""
    if creds.version == "3":
        causes = "device down, wrong address/port"
        if creds.priv_protocol:
            causes += (f", or wrong privacy password or protocol ({creds.priv_protocol}; net-snmp "
                       "and most devices drop a request they cannot decrypt without answering)")
    else:
        causes = ("device down, wrong address/port, or wrong community (SNMP v1/v2c devices do not "
                  "answer a wrong community)")
    message = (f"no answer from {where} within {timeout:g} s x {tries} "
               f"{'try' if tries == 1 else 'tries'}: {causes}")
    if datagrams:
        message += (f"; {datagrams} datagram(s) did arrive from the device but could not be decoded or "
                    "matched to the request (malformed reply; with SNMPv3 a Counter32 encoded as a "
                    "negative integer also makes the reply undecodable)")
    return SnmpTimeout(message)


def status_error(where: str, creds: Credentials, name: str, position: int, names: Sequence[OID]) -> SnmpError:
    """The error for a response whose error-status (named ``name``) is not noError."""
    oid = ""
    if 0 < position <= len(names):
        oid = f" ({oid_text(names[position - 1])})"
    if name in ("authorizationError", "noAccess"):
        hint = (f"; the user may need a higher security level than {creds.security_level()}"
                if creds.version == "3" else "")
        return SnmpAuthError(
            f"{where} refused access ({name}) at varbind {position}{oid}: the community or "
            f"user may read nothing here (net-snmp: rouser/rocommunity and its view{hint})")
    return SnmpError(f"{where} reported {name} at varbind {position}{oid}")


def v3_error(where: str, creds: Credentials, indication: str, detail: str = "") -> SnmpError:
    """An SNMPv3 security failure reported by the SNMP engine (``indication``: the RFC 3414 name, e.g.
    ``wrongDigest``; ``detail``: the engine's own text for the rest)."""
    user = f"SNMPv3 user {creds.username!r}"
    if indication == "unknownUserName":
        return SnmpAuthError(f"{where} does not know {user} (unknownUserName): check the user name, "
                             "and that the device has this user (net-snmp: createUser + rouser)")
    if indication == "wrongDigest":
        return SnmpAuthError(f"{where} rejected the authentication of {user} (wrongDigest): wrong "
                             f"authentication password or protocol (configured: {creds.auth_protocol})")
    if indication == "decryptionError":
        return SnmpAuthError(f"{where}: decryption failed for {user} (decryptionError): wrong privacy "
                             f"password or protocol (configured: {creds.priv_protocol})")
    if indication == "unsupportedSecLevel":
        return SnmpAuthError(
            f"{where} does not support security level {creds.security_level()} for {user} "
            f"(unsupportedSecLevel): the user has no {'privacy' if creds.priv_protocol else 'auth'} "
            f"key on the device, or the device does not support privacy protocol {creds.priv_protocol}")
    if indication == "unsupportedProtocol":
        return SnmpAuthError(f"unsupported priv protocol or auth protocol for {user} on this agent "
                             f"({detail}): privacy needs the Python package 'cryptography'")
    if indication == "notInTimeWindow":
        return SnmpAuthError(f"{where}: {user} is not in the device's time window (notInTimeWindow): "
                             "the device's engine boots/time went backwards; retry, or check for a "
                             "duplicate SNMP engine ID")
    if indication == "unknownEngineID":
        return SnmpError(f"{where}: unknown SNMP engine ID during SNMPv3 discovery ({detail})")
    return SnmpError(f"{where}: {detail or indication}")


# ------------------------------------------------------------------------------ responses that do not fit


def wrong_get_names(where: str, asked: Sequence[OID], received: Sequence[OID]) -> SnmpWrongOid | None:
    """None when a GET response carries exactly the OIDs asked, in the same positions; else the error."""
    if len(received) == len(asked) and all(a == r for a, r in zip(asked, received, strict=True)):
        return None
    at = next((i for i, (a, r) in enumerate(zip(asked, received, strict=False)) if a != r),
              min(len(asked), len(received)))
    wanted = oid_text(asked[at]) if at < len(asked) else "nothing"
    got = oid_text(received[at]) if at < len(received) else "nothing"
    count = ""
    if len(received) != len(asked):
        count = f" and {len(received)} varbind(s) for {len(asked)} OID(s) asked"
    return SnmpWrongOid(
        f"{where} answered a GET with the wrong object: asked {wanted}, received {got} at "
        f"varbind {at + 1}{count}; the device answered a different object than asked (buggy agent)")


def wrong_next_count(where: str, oid: OID, count: int, bulk: bool) -> SnmpWrongOid | None:
    """None when a GETNEXT for one OID got exactly one varbind back (a GETBULK at least one)."""
    if count == 1 or (bulk and count > 1):
        return None
    request = "GETBULK" if bulk else "GETNEXT"
    expected = "at least one" if bulk else "exactly one"
    return SnmpWrongOid(f"{where} answered a {request} for {oid_text(oid)} with {count} "
                        f"varbinds instead of {expected} (buggy agent)")


def not_increasing(where: str, root: OID, asked: OID, previous: OID, oid: OID) -> SnmpNotIncreasing:
    if previous == asked:
        place = f"in answer to a request for the OID after {oid_text(asked)}"
    else:
        place = f"after {oid_text(previous)} in the same GETBULK response"
    what = "the same OID again: the agent loops" if oid == previous else "it went backwards"
    return SnmpNotIncreasing(
        f"OID not increasing: {where} returned OID {oid_text(oid)} {place} while walking "
        f"{oid_text(root)} ({what}): OIDs must increase (buggy agent); walk abandoned")
