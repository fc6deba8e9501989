"""What a poll's problems say to a person: the lines ``hatang poll`` prints under ``errors`` and the local
status page (agent/status_view.py) shows for each device's last poll. Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from wire.messages import ProfileError

__all__ = ["error_line", "error_lines"]


def error_line(error: ProfileError) -> str:
    """One problem: where (the whole poll or a profile), the reason in brackets, and the message."""
    where = "whole poll" if error.profile == "*" else f"profile {error.profile}"
    reason = f" [{error.reason}]" if error.reason else ""
    return f"{where}{reason}: {error.error}"


def error_lines(profiles: Sequence[str], errors: Sequence[ProfileError], up: bool) -> list[str]:
    """Every problem of a poll, then (a device that did not answer) the profiles it was not asked for."""
    lines = [error_line(e) for e in errors]
    failed = {e.profile for e in errors}
    skipped = [p for p in profiles if p not in failed and "*" not in failed]
    if errors and not up and skipped:
        lines.append(f"not asked (the device did not answer): {', '.join(skipped)}")
    return lines
