"""Garbage-collector settings of the long-running services (``hatang agent``, ``hatang collector``).

A poll or an ingested batch makes thousands of short-lived containers (varbinds, values, samples) that
reference counting frees; few ever form cycles. CPython's default (a young collection after every 700 net
container allocations, an older one after 10 of those) then collected every few hundred varbinds: about
10 % of the agent's CPU went to the collector (perf, benchmarks/agent_whole.py; docs/performance.md). With
the objects alive at start-up moved out of the collector's way (``gc.freeze``: configuration, profiles,
imported modules) and a young generation of 20,000, it runs a few times a minute. Cyclic garbage still
goes, only later. What start-up made is never looked at again: should part of it become cyclic garbage
(a configuration replaced at run time), it stays, once; what is made later is collected as before.
"""

from __future__ import annotations

import gc

YOUNG_COLLECTION_AFTER = 20_000  # net container allocations (CPython's default: 700)


def tune_for_service() -> None:
    """Call once, when start-up is done and before the service's loop runs."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, older, oldest)
