"""Text for the ``hatang profiles`` command: list the known profiles, or show one in detail.

Both functions return the text to print and raise :class:`hatang.config_errors.ConfigError` for a broken
profile file (as loading the agent config would) and :class:`agent.profiles.UnknownProfileError` for an
unknown name.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from agent.profiles import (
    BUILTIN_DIR,
    Match,
    MetricSpec,
    Profile,
    TableSpec,
    UnknownProfileError,
    load_profile_files,
)

_WIDTH = 100


def _origin(path: Path) -> str:
    if path.parent == BUILTIN_DIR:
        return "built-in"
    replaced = " (replaces the built-in)" if (BUILTIN_DIR / path.name).is_file() else ""
    return f"user {path}{replaced}"


def list_profiles(user_dir: Path | None = None) -> str:
    """One line per profile: name, origin, description."""
    found = load_profile_files(user_dir)
    rows = [(name, _origin(path), profile.description) for name, (profile, path) in sorted(found.items())]
    name_w = max([len("PROFILE"), *(len(r[0]) for r in rows)])
    origin_w = max([len("ORIGIN"), *(len(r[1]) for r in rows)])
    lines = [f"{'PROFILE':<{name_w}}  {'ORIGIN':<{origin_w}}  DESCRIPTION"]
    lines.extend(f"{name:<{name_w}}  {origin:<{origin_w}}  {description}".rstrip()
                 for name, origin, description in rows)
    lines.append("")
    lines.append("Show one with: hatang profiles NAME")
    return "\n".join(lines) + "\n"


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, _WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False, break_long_words=False) or [indent.rstrip()]


def _details(metric: MetricSpec) -> list[str]:
    """What besides the OID shapes the value (fallback, scale, transforms), one short phrase each."""
    parts: list[str] = []
    if metric.scale != 1.0:
        parts.append(f"x {metric.scale:g}")
    if metric.fallback is not None:
        scale = f" x {metric.fallback.scale:g}" if metric.fallback.scale != 1.0 else ""
        parts.append(f"else {metric.fallback.oid}{scale}")
    if metric.add:
        parts.append(f"+ value of {metric.add}")
    if metric.multiply_by:
        parts.append(f"x value of {metric.multiply_by}")
    if metric.scale_from is not None:
        sf = metric.scale_from
        parts.extend(p for p in (f"SI prefix from {sf.si_prefix}" if sf.si_prefix else "",
                                 f"precision from {sf.precision}" if sf.precision else "") if p)
    for condition in metric.filter:
        if condition.matches is not None:
            test = f"matches {condition.matches!r}"
        elif condition.any_of is not None:
            test = f"in {', '.join(condition.any_of)}"
        else:
            test = f"not in {', '.join(condition.none_of or [])}"
        parts.append(f"only where {condition.oid} {test}")
    if metric.equals is not None:
        parts.append(f"1 if value in {', '.join(map(str, metric.equals))}, else 0")
    if metric.as_timestamp:
        parts.append("as unix time (needs the device's boot time)")
    if metric.const_labels:
        parts.append("labels " + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.const_labels.items())))
    return parts


def _metric_lines(metric: MetricSpec) -> list[str]:
    mtype = "info (gauge, value 1)" if metric.type == "info" else metric.type
    lines = [f"  {metric.name}  [{mtype}]"]
    if metric.oid:
        lines.append(f"      oid: {metric.oid}")
    for name, label in metric.labels.items():
        lines.append(f"      label {name}: {label.oid}")
    details = _details(metric)
    if details:
        lines.extend(_wrap("; ".join(details), "      "))
    lines.extend(_wrap(metric.help, "      "))
    return lines


def _table_lines(table: TableSpec) -> list[str]:
    lines = [f"table {table.name} (walked; label {table.index_label} = row index)"]
    for name, label in table.labels.items():
        extra = f", at the row named by column {label.via} (else the row index)" if label.via else ""
        extra += f", at index arcs {', '.join(map(str, label.index_arcs))}" if label.index_arcs else ""
        extra += ", last arc" if label.last_arc else ""
        extra += f", {len(label.map)} values named" if label.map else ""
        lines.extend(_wrap(f"label {name}: column {label.oid}{extra}", "  "))
    for metric in table.metrics:
        lines.extend(_metric_lines(metric))
    return lines


def show_profile(name: str, user_dir: Path | None = None) -> str:
    """The profile in detail: origin, description, and every metric with type, OID and help."""
    found = load_profile_files(user_dir)
    if name not in found:
        raise UnknownProfileError(f"unknown profile {name!r}; known: {', '.join(sorted(found))}")
    profile, path = found[name]
    return "\n".join(_profile_lines(profile, path)) + "\n"


def _match_lines(match: Match | None) -> list[str]:
    """How ``profiles: auto`` chooses the profile (docs/profiles.md, "Automatic selection")."""
    if match is None:
        return ["auto: never chosen automatically (no match block): list it by name"]
    tests = []
    if match.sys_object_id is not None:
        tests.append(f"sysObjectID under {' or '.join(match.sys_object_id)}")
    if match.sys_descr is not None:
        tests.append(f"sysDescr matching {match.sys_descr!r}")
    who = " or ".join(tests) if tests else "every device"
    needs = [' and '.join(match.answers)] if match.answers else []
    if match.answers_any:
        needs.append(f"one of {', '.join(match.answers_any)}" if len(match.answers_any) > 1
                     else match.answers_any[0])
    needs_text = f" that answers {' and '.join(needs)}" if needs else ""
    return _wrap(f"auto: chosen for {who}{needs_text}", "")


def _profile_lines(profile: Profile, path: Path) -> list[str]:
    lines = [f"profile: {profile.name}", f"origin: {_origin(path)}", f"file: {path}"]
    lines.extend(_wrap(f"description: {profile.description}", ""))
    if profile.extends:
        lines.extend(_wrap(f"extends: {', '.join(profile.extends)} (their metrics are shown below; "
                           "a metric or table defined here replaces theirs of the same name)", ""))
    lines.extend(_match_lines(profile.match))
    if profile.scalars:
        lines += ["", "scalars (one GET per poll)"]
        for metric in profile.scalars:
            lines.extend(_metric_lines(metric))
    for table in profile.tables:
        lines += ["", *_table_lines(table)]
    if profile.uptime is not None:
        up = profile.uptime
        lines += ["", f"reboot detection from {up.oid} (TimeTicks, wraps after 497 days)",
                  f"  {up.boot_time.name}  [gauge]", *_wrap(up.boot_time.help, "      ")]
        if up.reboots is not None:
            lines += [f"  {up.reboots.name}  [counter]", *_wrap(up.reboots.help, "      ")]
    return lines
