"""What "up", "down" and "unknown" mean, defined once (docs/operations.md, "Availability").

Each subject the report counts (an office's connection to the centre, a device, a government-network
link) has one PromQL expression evaluated on a one-minute grid. At the instant that ends a minute it
gives 1 (up) or 0 (down) per series, or nothing at all (unknown: no data). ``hatang report`` and the
province board's availability panels evaluate them over the raw series when they run, so that polls
buffered during an outage and written late count too; the recording rule in
deploy/prometheus/rules/availability.rules.yml records the office's (:data:`RECORDED`; a test compares
them) for the board's connection history.

- office: ``hatang_agent_up``, set by the collector at each scrape: 1 while the centre receives the
  agent (its birth message, no will since). Never backfilled: it is what the centre could see.
- device: ``hatang_device_poll_success``, one sample per poll at the poll's own time (1: the device
  answered), carried by the poll and so written late by remote write after an outage.
- link: ``hatang_probe_up``, one sample per probe run at its own time, carried like a poll.

A sample's state lasts until the next sample of its series, for at most :data:`LOOKBACK` (Prometheus
range selectors in 2.x include both ends: a sample exactly ``LOOKBACK`` before the instant counts).
Pure data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SubjectKind = Literal["office", "device", "link"]

STEP_SECONDS = 60  # the grid: one state per minute
LOOKBACK = "3m"  # how long a sample's state lasts without a newer one (three polls at the default 60 s)
LOOKBACK_SECONDS = 180


@dataclass(frozen=True, slots=True)
class Subject:
    """One kind of thing the report counts: its recorded series, expression and identifying labels."""

    kind: SubjectKind
    record: str  # the recording rule's series name
    source: str  # the raw series the expression reads
    identity: tuple[str, ...]  # labels that tell two subjects of this kind apart

    @property
    def expr(self) -> str:
        """1 (up), 0 (down) or no sample (unknown) at the end of a minute, per series. The maximum over
        ``instance``: collectors in a shared group (docs/scaling.md) each serve ``hatang_agent_up``."""
        return self.over(self.source)

    def over(self, selector: str) -> str:
        """:attr:`expr` on a narrower selector of :attr:`source` (a board's ``metric{agent=~"$agent"}``)."""
        if selector.split("{", 1)[0] != self.source:
            raise ValueError(f"{selector!r} does not select {self.source}")
        return f"max without (instance) (last_over_time({selector}[{LOOKBACK}]))"


OFFICE = Subject("office", "hatang:office_state:1m", "hatang_agent_up", ("agent",))
DEVICE = Subject("device", "hatang:device_state:1m", "hatang_device_poll_success", ("agent", "device"))
LINK = Subject("link", "hatang:link_state:1m", "hatang_probe_up", ("agent", "device", "method", "target"))
SUBJECTS: tuple[Subject, ...] = (OFFICE, DEVICE, LINK)
# The subjects whose state Prometheus records (deploy/prometheus/rules/availability.rules.yml). Only the
# office's: its series is made at scrape time and never written late, so what was recorded stays true.
# A device's or link's state recorded during an outage would stay "unknown" after the office's buffered
# polls arrive; those are always evaluated over the raw series (report and board alike).
RECORDED: tuple[Subject, ...] = (OFFICE,)

# Labels a report shows beside a subject's identity when the series carries them (the site hierarchy).
SITE_LABELS: tuple[str, ...] = ("province", "district", "commune")
