"""SNMP credentials and the SNMPv3 protocol names: the one list that config, polls and traps use.

The names are ours (net-snmp's spelling where it has one); :mod:`agent.snmp.pysnmp_session` maps each to
pysnmp's protocol object and a test checks that the two lists agree. Why AES192/AES256 are the
Blumenthal variants and AES192C/AES256C the Reeder ones: see that module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

SnmpVersion = Literal["1", "2c", "3"]
AuthProtocol = Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"]
PrivProtocol = Literal["DES", "AES", "AES128", "AES192", "AES256", "AES192C", "AES256C"]
SecurityLevel = Literal["noAuthNoPriv", "authNoPriv", "authPriv"]

SNMP_VERSIONS: tuple[str, ...] = get_args(SnmpVersion)
AUTH_PROTOCOLS: tuple[str, ...] = get_args(AuthProtocol)
PRIV_PROTOCOLS: tuple[str, ...] = get_args(PrivProtocol)
SECURITY_LEVELS: tuple[str, ...] = get_args(SecurityLevel)  # weakest first


def security_level(auth_protocol: str | None, priv_protocol: str | None) -> str:
    """The SNMPv3 security level that a user with these protocols has."""
    if priv_protocol:
        return "authPriv"
    return "authNoPriv" if auth_protocol else "noAuthNoPriv"


def level_rank(level: str) -> int:
    """1 for noAuthNoPriv up to 3 for authPriv (0 for anything else)."""
    return SECURITY_LEVELS.index(level) + 1 if level in SECURITY_LEVELS else 0


@dataclass(frozen=True, slots=True)
class Credentials:
    version: str  # "1", "2c" or "3"
    community: str = "public"
    username: str = ""
    auth_protocol: str | None = None  # one of AUTH_PROTOCOLS
    auth_password: str = ""
    priv_protocol: str | None = None  # one of PRIV_PROTOCOLS
    priv_password: str = ""
    context: str = ""

    def security_level(self) -> str:
        if self.version != "3":
            return "community"
        return security_level(self.auth_protocol, self.priv_protocol)
