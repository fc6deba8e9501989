"""The ``hatang`` command: agent, collector, check, poll, profiles, demo; maintenance, report, fleet and
discover (hatang/cli_maintenance.py, hatang/cli_report.py, hatang/cli_fleet.py, hatang/cli_discover.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import typing
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from hatang import __version__, config_paths
from hatang.config_errors import ConfigError, ConfigWarning
from hatang.gc_settings import tune_for_service

if typing.TYPE_CHECKING:
    from agent.config import AgentConfig
    from collector.config import CollectorConfig

EXIT_CONFIG = 2
# The daemons' command lines leave out the centre's availability tools (maintenance, report) and so do not
# import them: an office agent's memory is counted (docs/performance.md).
DAEMONS = ("agent", "collector")


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def log_warnings(warnings: Sequence[ConfigWarning]) -> None:
    """Config warnings at a service's start (after logging is set up): one WARNING line each."""
    for warning in warnings:
        logging.getLogger("hatang.config").warning("%s", warning)


def load_collector(path: Path) -> tuple[CollectorConfig, list[ConfigWarning]]:
    """The collector config and its warnings, with every ``*_file`` checked (as ``hatang check`` does)."""
    from collector import config as collector_config

    config = collector_config.load(path)
    from hatang import configfile

    return config, configfile.check_files(config, path)


async def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run ``main(stop)``; SIGINT/SIGTERM set ``stop`` so services shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


def _cmd_agent(args: argparse.Namespace) -> int:
    from agent.checked_config import CheckFailed, check_in_child
    from agent.service import AgentService

    path = Path(args.config)
    # checked in a child process: the agent's own never imports pydantic (agent/checked_config.py)
    try:
        checked = check_in_child(path)
    except CheckFailed as exc:
        print(f"hatang: {exc}", file=sys.stderr)
        return 1
    setup_logging(checked.config.log_level)
    log_warnings(checked.warnings)
    service = AgentService(checked.config, path, profiles=checked.profiles, checker=check_in_child)
    tune_for_service()
    asyncio.run(run_until_signal(service.run))
    return 0


def _cmd_collector(args: argparse.Namespace) -> int:
    from collector.service import CollectorService

    path = Path(args.config)
    config, warnings = load_collector(path)
    setup_logging(config.log_level)
    log_warnings(warnings)
    service = CollectorService(config, path)

    async def main(stop: asyncio.Event) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, service.reload)
        await service.run(stop)

    asyncio.run(run_until_signal(main))
    return 0


def config_kind(data: object) -> str:
    """'agent' or 'collector', guessed from the keys of a config file."""
    if isinstance(data, dict) and ({"agent_id", "devices", "site", "buffer"} & data.keys()):
        return "agent"
    return "collector"


def _remote_config_note(agent: AgentConfig, path: Path) -> str:
    """``remote_config``: the centre's public key must load (ConfigError naming the key otherwise); say
    which kept configuration the agent would start from, or why it would not."""
    from agent.remote_config import RemoteConfig

    remote = RemoteConfig(agent, path)
    kept = remote.last_good()
    if kept is not None:
        return (f"; starts from revision {kept.revision} of the centre's configuration "
                f"({len(kept.config.devices)} device(s), kept in {remote.state_file})")
    if remote.rejection is not None:
        print(f"WARNING: {remote.state_file}: the kept configuration from the centre is refused "
              f"({remote.rejection.reason}: {remote.rejection.error}); the agent starts from {path} alone",
              file=sys.stderr)
    return "; configured from the centre (no configuration kept yet)"


def _cmd_check(args: argparse.Namespace) -> int:
    path = Path(args.config)
    if args.skip_files and not os.environ.get(config_paths.CREDENTIALS_VARIABLE):
        # The files are not read: where systemd will put the credentials does not matter.
        os.environ[config_paths.CREDENTIALS_VARIABLE] = "/run/credentials/hatang"
    from hatang.yaml_loading import load_yaml

    kind = args.kind or config_kind(load_yaml(path))
    if kind == "agent":
        from agent import config as agent_config

        if args.skip_files:
            agent = agent_config.parse(path)
            warnings = agent_config.model_warnings(agent, path)
        else:
            agent, warnings = agent_config.load_with_warnings(path)
        summary = f"agent config for '{agent.agent_id}' with {len(agent.devices)} device(s)"
        if agent.remote_config is not None and not args.skip_files:
            summary += _remote_config_note(agent, path)
    else:
        from collector import config as collector_config

        if args.skip_files:
            collector, warnings = collector_config.load(path), []
        else:
            collector, warnings = load_collector(path)
        summary = f"collector config, serving on {collector.listen}"
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    notes = [f"{len(warnings)} warning(s) on stderr"] if warnings else []
    if args.skip_files:
        notes.append("files and directories it names not checked")
    note = f" ({'; '.join(notes)})" if notes else ""
    print(f"{path}: OK: {summary}{note}")
    return 0


def _cmd_poll(args: argparse.Namespace) -> int:
    from agent import config as agent_config
    from agent.poll_once import UnknownDeviceError, poll_once

    path = Path(args.config)
    config = agent_config.load(path)
    setup_logging("error")
    if config.remote_config is not None:  # the devices the agent runs: the centre's kept configuration
        from agent.remote_config import RemoteConfig

        kept = RemoteConfig(config, path).last_good()
        config = kept.config if kept is not None else config
    try:
        print(asyncio.run(poll_once(config, path, args.device)), end="")
    except UnknownDeviceError as exc:
        print(f"hatang: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from agent import config as agent_config
    from agent.profile_catalog import list_profiles, show_profile
    from agent.profiles import UnknownProfileError

    user_dir = Path(args.dir) if args.dir else None
    if args.config:
        user_dir = agent_config.parse(Path(args.config)).profiles_dir
    try:
        print(show_profile(args.name, user_dir) if args.name else list_profiles(user_dir), end="")
    except UnknownProfileError as exc:
        print(f"hatang: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hatang.demo import run_demo

    setup_logging("warning" if not args.verbose else "info")
    host, _, port = args.listen.rpartition(":")
    asyncio.run(run_until_signal(lambda stop: run_demo(stop, host or "127.0.0.1", int(port), args.duration)))
    return 0


def _add_credentials(p: argparse.ArgumentParser) -> None:
    p.add_argument("--credentials", metavar="DIR",
                   help="the directory that ${CREDENTIALS_DIRECTORY} in *_file paths stands for (systemd "
                        "sets it for the service from LoadCredential=; give /etc/hatang/secrets to run by "
                        "hand)")


def build_parser(with_centre_tools: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hatang", description="hatang: SNMP over MQTT into Prometheus")
    parser.add_argument("--version", action="version", version=f"hatang {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("agent", help="run an agent (polls SNMP devices, publishes over MQTT)")
    p.add_argument("-c", "--config", required=True, help="agent YAML config file")
    _add_credentials(p)
    p.set_defaults(func=_cmd_agent)

    p = sub.add_parser("collector", help="run a collector (MQTT in, Prometheus /metrics out)")
    p.add_argument("-c", "--config", required=True, help="collector YAML config file")
    _add_credentials(p)
    p.set_defaults(func=_cmd_collector)

    p = sub.add_parser("check", help="validate an agent or collector config file")
    p.add_argument("-c", "--config", required=True, help="config file to check")
    p.add_argument("--kind", choices=("agent", "collector"), help="config kind (default: guessed from keys)")
    p.add_argument("--skip-files", action="store_true",
                   help="check keys and values only, not the files and directories the config names (for a "
                        "config written for another machine); run without it on the machine itself")
    _add_credentials(p)
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("poll", help="poll one device once and print what would be published")
    p.add_argument("-c", "--config", required=True, help="agent YAML config file")
    p.add_argument("--device", required=True, help="device name from the config")
    _add_credentials(p)
    p.set_defaults(func=_cmd_poll)

    p = sub.add_parser("profiles", help="list SNMP profiles, or show one")
    p.add_argument("name", nargs="?", help="profile to show in detail")
    p.add_argument("-c", "--config", help="agent config (its profiles_dir adds user profiles)")
    p.add_argument("--dir", help="a directory of user profiles")
    p.set_defaults(func=_cmd_profiles)

    p = sub.add_parser("demo", help="the whole system on this machine: broker, simulated devices, agent, "
                                    "collector")
    p.add_argument("--listen", default="127.0.0.1:9108", help="collector HTTP address (default %(default)s)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the services do")
    p.set_defaults(func=_cmd_demo)

    if with_centre_tools:
        from hatang import cli_discover, cli_fleet, cli_maintenance, cli_report

        cli_maintenance.add_parser(sub)
        cli_report.add_parser(sub)
        cli_fleet.add_parser(sub)
        cli_discover.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(with_centre_tools=not (argv and argv[0] in DAEMONS)).parse_args(argv)
    if getattr(args, "credentials", None):
        os.environ[config_paths.CREDENTIALS_VARIABLE] = os.path.abspath(args.credentials)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"hatang: config error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
