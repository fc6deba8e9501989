"""``hatang discover``: sweep an office's addresses for SNMP devices, print what answered and (with
``--output``) write their ``devices:`` block for agent.yaml (docs/discovery.md).

    hatang discover 192.168.1.0/24 --community-file /etc/hatang/secrets/snmp-community --output devices.yaml
    hatang discover 192.168.1.1 192.168.1.10-50 --community public --community office --thorough

The table goes to stdout, progress, the summary and hints to stderr. No secret is ever printed; a
community given on the command line is written inline into ``--output`` (made readable by its owner
only), one read from ``--community-file`` (and SNMPv3 passwords, only taken from files) as
``${CREDENTIALS_DIRECTORY}/<the file's name>``: the name the offline install gives each file of
/etc/hatang/secrets/ in the agent's ``LoadCredential=`` lines.

The SNMP engine and the profiles are imported when the command runs, not when the parser is built.

Exit codes: 0 swept (whether or not anything answered); 1 the output could not be written; 2 bad
options, targets over ``--max-addresses``, or an unreadable secret file.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.discovery import (
    DEFAULT_MAX_ADDRESSES,
    HARD_MAX_ADDRESSES,
    Credential,
    Found,
    HostAddress,
    SweepOptions,
    SweepResult,
    TargetError,
    expand_targets,
    render_devices,
    sweep,
)
from agent.snmp.credentials import AUTH_PROTOCOLS, PRIV_PROTOCOLS, Credentials

EXIT_WRITE = 1
EXIT_USAGE = 2
CREDENTIALS_PREFIX = "${CREDENTIALS_DIRECTORY}/"
DEFAULT_COMMUNITY = "public"


class OptionError(ValueError):
    """Options that cannot start a sweep; ``str()`` says what to type instead."""


class _Ordered(argparse.Action):
    """--community and --community-file into one list, in the order given: (kind, value)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(("file" if option_string == "--community-file" else "inline", str(values)))
        setattr(namespace, self.dest, items)


def _positive(kind: type[int] | type[float], what: str) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{what} must be above 0")
        return value
    return parse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``discover`` to ``hatang``."""
    p = sub.add_parser(
        "discover", help="find the SNMP devices of an office and write their devices: block",
        description="Ask every address of the targets for sysObjectID, sysName and sysDescr, choose each "
                    "answering device's profiles, print a table and (with --output) write a devices: block "
                    "for agent.yaml. Exit codes: 0 swept, 1 output not written, 2 bad options or targets.")
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="an address (192.168.1.10), a network (192.168.1.0/24; its network and broadcast "
                        "addresses left out) or a range (192.168.1.10-192.168.1.50, or 192.168.1.10-50)")
    p.add_argument("--port", type=int, default=161, metavar="N",
                   help="UDP port of the devices (default %(default)s)")
    p.add_argument("--community", dest="communities", action=_Ordered, metavar="C",
                   help="a community to ask with (repeatable: tried in the order given; default: public)")
    p.add_argument("--community-file", dest="communities", action=_Ordered, metavar="FILE",
                   help="a file with a community on its first line (repeatable); --output refers to it as "
                        "${CREDENTIALS_DIRECTORY}/<its name>")
    p.add_argument("--snmp-version", choices=("2c", "1"), default="2c",
                   help="SNMP version of the communities (default %(default)s; 1 for very old devices)")
    p.add_argument("--v3-user", metavar="NAME", help="also ask with this SNMPv3 user (after the communities)")
    p.add_argument("--auth-protocol", choices=AUTH_PROTOCOLS, help="SNMPv3 authentication protocol")
    p.add_argument("--auth-password-file", metavar="FILE", help="SNMPv3 authentication password (first line)")
    p.add_argument("--priv-protocol", choices=PRIV_PROTOCOLS, help="SNMPv3 privacy protocol")
    p.add_argument("--priv-password-file", metavar="FILE", help="SNMPv3 privacy password (first line)")
    p.add_argument("--thorough", action="store_true",
                   help="ask an address that does not answer with every credential in turn (each costs one "
                        "more timeout per silent address); default: the first timeout ends the address")
    p.add_argument("--timeout", type=_positive(float, "--timeout"), default=1.0, metavar="S",
                   help="seconds to wait for an answer, no retries (default %(default)s)")
    p.add_argument("--concurrency", type=_positive(int, "--concurrency"), default=32, metavar="N",
                   help="addresses asked at the same time (default %(default)s)")
    p.add_argument("--rate", type=_positive(float, "--rate"), default=100.0, metavar="PER_SECOND",
                   help="SNMP requests per second, all addresses together (default %(default)s)")
    p.add_argument("--max-addresses", type=_positive(int, "--max-addresses"), default=DEFAULT_MAX_ADDRESSES,
                   metavar="N",
                   help="refuse to sweep more addresses than this (default %(default)s)")
    p.add_argument("--profiles-dir", metavar="DIR", help="a directory of user profiles (agent.yaml's "
                                                         "profiles_dir) to choose from too")
    p.add_argument("--output", metavar="FILE", help="write the devices: block for agent.yaml to FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------ credentials


def _secret(path: str, what: str) -> str:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise OptionError(f"{what} {path}: cannot read it ({reason})") from None
    if not lines or not lines[0].strip():
        raise OptionError(f"{what} {path} is empty: write the secret on its first line")
    return lines[0].strip()


def _reference(path: str) -> str:
    return CREDENTIALS_PREFIX + Path(path).name


def credentials(args: argparse.Namespace) -> list[Credential]:
    """The credentials in the order they are tried: the communities as given, then the SNMPv3 user."""
    out: list[Credential] = []
    given = list(args.communities or [])
    if not given and not args.v3_user:
        given = [("inline", DEFAULT_COMMUNITY)]
    version = args.snmp_version
    for kind, value in given:
        if kind == "file":
            out.append(Credential(Credentials(version, _secret(value, "--community-file")),
                                  (("version", version), ("community_file", _reference(value)))))
        else:
            out.append(Credential(Credentials(version, value), (("version", version), ("community", value))))
    if args.v3_user:
        out.append(_v3(args))
    elif args.auth_protocol or args.priv_protocol or args.auth_password_file or args.priv_password_file:
        raise OptionError("the SNMPv3 options need --v3-user")
    return out


def _v3(args: argparse.Namespace) -> Credential:
    settings: list[tuple[str, str]] = [("version", "3"), ("username", args.v3_user)]
    passwords: dict[str, str] = {}
    for kind in ("auth", "priv"):
        protocol, path = getattr(args, f"{kind}_protocol"), getattr(args, f"{kind}_password_file")
        if protocol and not path:
            raise OptionError(f"--{kind}-protocol needs --{kind}-password-file")
        if path and not protocol:
            raise OptionError(f"--{kind}-password-file needs --{kind}-protocol")
        if protocol:
            passwords[kind] = _secret(path, f"--{kind}-password-file")
            settings += [(f"{kind}_protocol", protocol), (f"{kind}_password_file", _reference(path))]
    if "priv" in passwords and "auth" not in passwords:
        raise OptionError("--priv-protocol needs --auth-protocol too (SNMPv3 has no privacy without auth)")
    creds = Credentials("3", username=args.v3_user, auth_protocol=args.auth_protocol,
                        auth_password=passwords.get("auth", ""), priv_protocol=args.priv_protocol,
                        priv_password=passwords.get("priv", ""))
    return Credential(creds, tuple(settings))


# ------------------------------------------------------------------------------------------ output


def table(found: Sequence[Found]) -> str:
    """The devices found as a fixed-width table (no secrets: the SNMP column is the version)."""
    head = ("ADDRESS", "NAME", "VENDOR", "MODEL", "PROFILES", "SNMP")
    rows = [(d.address, d.name, d.vendor or "-", d.model or "-", ",".join(d.profiles) or "-",
             "v" + d.credential.version) for d in found]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head) - 1)]
    return "".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
                   + "\n" for row in [head, *rows])


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only (it may hold a community)."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def summary(result: SweepResult, credentials_count: int, thorough: bool) -> list[str]:
    lines = [f"asked {result.asked} address(es) in {result.seconds:.1f} s: {result.answered} answered, "
             f"{result.timed_out} timed out, {len(result.errors)} error(s)"]
    lines += [f"  {address}: {problem}" for address, problem in sorted(result.errors.items())]
    if credentials_count > 1 and not thorough and result.timed_out:
        lines.append(f"note: the {result.timed_out} address(es) that did not answer were asked with the "
                     "first credential only; --thorough asks each credential in turn (one timeout each)")
    return lines


class _Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last = time.monotonic()

    def __call__(self, done: int, total: int, answered: int) -> None:
        """At most one line a second, and the last one."""
        now = time.monotonic()
        if self.quiet or (now - self.last < 1.0 and done < total):
            return
        self.last = now
        print(f"discover: {done}/{total} addresses done, {answered} answered", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ command


def run(args: argparse.Namespace) -> int:
    try:
        if args.max_addresses > HARD_MAX_ADDRESSES:
            raise OptionError(f"--max-addresses {args.max_addresses}: at most {HARD_MAX_ADDRESSES}")
        if not 1 <= args.port <= 65535:
            raise OptionError(f"--port {args.port}: give a UDP port from 1 to 65535")
        addresses = expand_targets(args.targets, args.max_addresses)  # before any packet is sent
        ipv6 = [a for a in addresses if a.version == 6]
        if ipv6:
            raise OptionError(f"{ipv6[0]} is an IPv6 address: hatang's SNMP client (and so the agent) speaks "
                             "IPv4 only for now; give IPv4 targets")
        creds = credentials(args)
    except (OptionError, TargetError) as exc:
        print(f"hatang discover: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = asyncio.run(_sweep(args, addresses, creds))
    sys.stdout.write(table(result.found) if result.found else "no device answered\n")
    sys.stdout.flush()
    for line in summary(result, len(creds), args.thorough):
        print(line, file=sys.stderr)
    if args.output:
        return _write_output(args, result)
    return 0


async def _sweep(args: argparse.Namespace, addresses: Sequence[HostAddress], creds: Sequence[Credential]
                 ) -> SweepResult:
    from agent.profiles import load_profiles
    from agent.snmp.engine import SnmpEngine

    profiles = load_profiles(Path(args.profiles_dir) if args.profiles_dir else None)
    options = SweepOptions(port=args.port, timeout=args.timeout, concurrency=args.concurrency, rate=args.rate,
                           thorough=args.thorough)
    engine = SnmpEngine()
    try:
        return await sweep(engine, addresses, creds, profiles, options, _Progress(args.quiet))
    finally:
        engine.close()


def _write_output(args: argparse.Namespace, result: SweepResult) -> int:
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    header = [f"Written by hatang discover {' '.join(args.targets)} on {stamp}: {result.answered} device(s).",
              "Put these entries under devices: in agent.yaml, then run hatang check -c agent.yaml."]
    path = Path(args.output)
    try:
        write_private(path, render_devices(result.found, header))
    except OSError as exc:
        print(f"hatang discover: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_WRITE
    print(f"wrote {result.answered} device(s) to {path}", file=sys.stderr)
    return 0
