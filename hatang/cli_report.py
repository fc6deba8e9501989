"""``hatang report``: the monthly availability report of offices, devices and government-network links,
computed from Prometheus (docs/operations.md, "Availability").

    hatang report --prometheus http://127.0.0.1:9090 --month 2026-11 --maintenance maintenance.yaml
    hatang report --prometheus URL --from 2026-11-01 --to 2026-11-30 --format csv --output nov.csv

The period is ``[--from, --to)`` read in ``--tz`` (Asia/Ho_Chi_Minh by default); a bare ``--to`` date
includes that whole day. The work is: one instant query for the office names (``hatang_site_info``), then
for each subject (:data:`hatang.availability.definitions.SUBJECTS`) its range query in one-day chunks,
each chunk folded into one byte per minute per subject before the next is fetched
(:mod:`hatang.availability.timeline`); then maintenance, totals and rendering, all pure.

Exit codes: 0 written; 1 Prometheus failed (unreachable, HTTP error, timeout; the message names the URL
and the fix) or the output could not be written; 2 bad options, dates or maintenance file.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from hatang.availability.definitions import DEVICE, LINK, OFFICE, STEP_SECONDS, Subject
from hatang.availability.prometheus_query import DEFAULT_TIMEOUT, PrometheusClient, PrometheusError
from hatang.availability.report_model import AvailabilityReport, build_report
from hatang.availability.timeline import UNKNOWN_AS, PeriodError, ReportPeriod, TimelineSet
from hatang.availability.windows import DEFAULT_ZONE, MaintenanceWindow, TimeFormatError, parse_time, zone
from hatang.config_errors import ConfigError

EXIT_PROMETHEUS = 1
EXIT_USAGE = 2
MAX_DAYS = 366
FORMATS = ("html", "csv", "md")
SITE_INFO = "hatang_site_info"


class UsageError(ValueError):
    """Options that cannot make a report; ``str()`` says what to type instead."""


@dataclass
class Gathered:
    """What Prometheus said about the period, folded; with the time spent waiting for Prometheus (request,
    transfer and JSON decoding) apart from the time spent folding the answers."""

    site_info: dict[str, dict[str, str]]
    timelines: dict[str, TimelineSet]  # by subject kind
    query_seconds: float = 0.0
    fold_seconds: float = 0.0
    requests: int = 0


def parse_period(month: str | None, start: str | None, end: str | None, tz: tzinfo) -> ReportPeriod:
    """The period from ``--month`` or ``--from``/``--to`` (a bare ``--to`` date includes that day)."""
    if month is not None:
        if start is not None or end is not None:
            raise UsageError("give either --month or --from and --to, not both")
        try:
            first = datetime.strptime(month.strip(), "%Y-%m")
        except ValueError:
            raise UsageError(f"--month {month!r}: use YYYY-MM, e.g. 2026-11") from None
        following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        begin, finish = first.replace(tzinfo=tz), following.replace(tzinfo=tz)
    elif start is not None and end is not None:
        try:
            begin, finish = parse_time(start, tz), parse_time(end, tz, end_of_day=True)
        except TimeFormatError as exc:
            raise UsageError(str(exc)) from None
    else:
        raise UsageError("give the period: --month YYYY-MM, or --from DATE and --to DATE")
    try:
        period = ReportPeriod(begin, finish)
    except PeriodError as exc:
        raise UsageError(f"{exc} (--from and --to must be whole minutes, --from before --to)") from None
    if period.minutes > MAX_DAYS * 1440:
        raise UsageError(f"the period is longer than {MAX_DAYS} days: make one report per month or year")
    return period


def gather(client: PrometheusClient, period: ReportPeriod,
           subjects: tuple[Subject, ...] = (OFFICE, DEVICE, LINK),
           progress: Callable[[str], None] | None = None) -> Gathered:
    """Ask Prometheus for the office names and every subject's minutes over ``period``, folding each
    one-day chunk as it arrives."""
    started = time.perf_counter()
    names = client.instant(f"last_over_time({SITE_INFO}[{period.end_ts - period.start_ts}s])", period.end_ts)
    result = Gathered({}, {}, time.perf_counter() - started, 0.0, 1)
    for labels, _ in sorted(names, key=lambda item: sorted(item[0].items())):
        if labels.get("agent"):
            result.site_info[labels["agent"]] = labels
    for subject in subjects:
        timelines = result.timelines[subject.kind] = TimelineSet(period, subject.identity)
        chunks = client.query_range(subject.expr, period.start_ts + STEP_SECONDS, period.end_ts, STEP_SECONDS)
        while True:
            asked = time.perf_counter()
            chunk = next(chunks, None)
            folding = time.perf_counter()
            result.query_seconds += folding - asked
            if chunk is None:
                break
            result.requests += 1
            try:
                for series in chunk:
                    timelines.add(series.labels, series.points)
            except (TypeError, ValueError) as exc:  # a point that is not [time, "value"]
                raise PrometheusError(f"{client.url} does not answer like the Prometheus HTTP API (a "
                                      f"malformed point: {exc}). Check the --prometheus URL") from None
            result.fold_seconds += time.perf_counter() - folding
            if progress is not None:
                progress(f"{subject.kind}: {len(timelines.timelines)} series")
    return result


def load_maintenance(path: str | None) -> list[MaintenanceWindow]:
    if path is None:
        return []
    from hatang.availability.maintenance_file import load_windows

    file = Path(path)
    if not file.exists():
        print(f"hatang report: warning: the maintenance file {file} does not exist: no maintenance is "
              "left out", file=sys.stderr)
    return load_windows(file)


def render(report: AvailabilityReport, kind: str) -> str:
    if kind == "csv":
        from hatang.availability.render_text import render_csv

        return render_csv(report)
    if kind == "md":
        from hatang.availability.render_text import render_markdown

        return render_markdown(report)
    from hatang.availability.render_html import render_html

    return render_html(report)


def _fail(message: str, code: int) -> int:
    print(f"hatang report: {message}", file=sys.stderr)
    return code


def _cmd_report(args: argparse.Namespace) -> int:
    try:
        tz = zone(args.tz)
        period = parse_period(args.month, args.start, args.end, tz)
        client = PrometheusClient(args.prometheus, args.timeout)
        if args.top < 0 or args.timeout <= 0:
            raise UsageError("--top must be 0 or more and --timeout more than 0")
        windows = load_maintenance(args.maintenance)
    except ValueError as exc:  # UsageError, TimeFormatError, a bad URL
        return _fail(str(exc), EXIT_USAGE)
    except ConfigError as exc:
        return _fail(f"maintenance file error:\n{exc}", EXIT_USAGE)
    now = datetime.now(tz)
    if period.end > now + timedelta(minutes=1):
        print(f"hatang report: warning: the period ends in the future ({period.end.isoformat()}): the "
              "minutes after now count as unknown (no data)", file=sys.stderr)
    try:
        gathered = gather(client, period)
    except PrometheusError as exc:
        return _fail(str(exc), EXIT_PROMETHEUS)
    report = build_report(
        period=period, tz=tz, tz_name=args.tz, generated_at=now, source=client.url,
        offices=gathered.timelines["office"].timelines.values(),
        devices=gathered.timelines["device"].timelines.values(),
        links=gathered.timelines["link"].timelines.values(),
        site_info=gathered.site_info, windows=windows, unknown_as=args.unknown_as, top=args.top,
        title=args.title or "", maintenance_file=args.maintenance,
    )
    data = render(report, args.format).encode("utf-8")
    if args.output is None:
        sys.stdout.flush()
        binary = getattr(sys.stdout, "buffer", None)  # bytes, so the CSV's BOM and UTF-8 survive any locale
        if binary is None:
            sys.stdout.write(data.decode("utf-8"))
        else:
            binary.write(data)
            binary.flush()
        return 0
    try:
        Path(args.output).write_bytes(data)
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}", EXIT_PROMETHEUS)
    print(f"hatang report: wrote {args.output} ({len(report.offices)} offices, "
          f"{len(report.devices)} devices, {len(report.links)} links, {period.minutes} minutes)",
          file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``hatang report`` to the ``hatang`` command's subcommands."""
    p = sub.add_parser(
        "report", help="the availability report of offices, devices and links (HTML, CSV or Markdown)",
        description="Availability of every office's connection, device and government-network link over "
                    "a period, from Prometheus: minutes up, down, unknown (no data) and in maintenance, "
                    "availability, downtime and the longest incidents.")
    p.add_argument("--prometheus", required=True, metavar="URL",
                   help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    p.add_argument("--month", metavar="YYYY-MM", help="the calendar month (instead of --from/--to)")
    p.add_argument("--from", dest="start", metavar="DATE",
                   help="start, e.g. 2026-11-01 or '2026-11-01 08:00'")
    p.add_argument("--to", dest="end", metavar="DATE",
                   help="end (excluded); a bare date includes that day: --to 2026-11-30 ends 2026-12-01 "
                        "00:00")
    p.add_argument("--tz", default=DEFAULT_ZONE, help="time zone of the dates and of the report "
                                                     "(default %(default)s)")
    p.add_argument("--maintenance", metavar="FILE",
                   help="the planned-maintenance file of `hatang maintenance` (e.g. "
                        "/var/lib/hatang/maintenance.yaml); without it no minute is maintenance")
    p.add_argument("--unknown-as", choices=UNKNOWN_AS, default="down",
                   help="how minutes without data count: down (default), up, or excluded from the "
                        "denominator")
    p.add_argument("--top", type=int, default=10, metavar="N", help="longest incidents to list (default 10)")
    p.add_argument("--format", choices=FORMATS, default="html", help="output format (default html)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    p.add_argument("--title", help="the report's title (default: Báo cáo mức độ sẵn sàng hạ tầng mạng)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="per Prometheus request (default %(default)g)")
    p.set_defaults(func=_cmd_report)
