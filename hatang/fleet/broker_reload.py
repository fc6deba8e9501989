"""Making the broker read its password file again after a fleet command changed it."""

from __future__ import annotations

import shlex
import subprocess
import sys

from hatang.fleet.layout import FleetSettings


def reload_broker(settings: FleetSettings, skip: bool) -> None:
    """Run the fleet's reload command (or, with ``skip`` or none set, say what to do)."""
    if skip or not settings.reload_command:
        print("the broker reads its password file again on SIGHUP: run `systemctl reload mosquitto` (or "
              "`kill -HUP <pid>`) for the change to take effect", file=sys.stderr)
        return
    try:
        done = subprocess.run(settings.reload_command, capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"WARNING: could not reload the broker ({shlex.join(settings.reload_command)}): {exc}; "
              "reload it by hand (SIGHUP)", file=sys.stderr)
        return
    if done.returncode != 0:
        print(f"WARNING: reloading the broker failed ({shlex.join(settings.reload_command)}, exit "
              f"{done.returncode}): {done.stderr.strip()}; reload it by hand (SIGHUP)", file=sys.stderr)
    else:
        print(f"broker reloaded ({shlex.join(settings.reload_command)})")
