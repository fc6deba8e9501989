"""Garbage-collector settings of ``hatang agent`` (hatang/cli.py).

A poll makes thousands of short-lived containers (varbinds, values, samples) that
reference counting frees; few ever form cycles. CPython's default (a young collection after every 700 net
container allocations, an older one after 10 of those) then collected every few hundred varbinds: about
10 % of the agent's CPU went to the collector (perf, benchmarks/agent_whole.py; docs/performance.md). With
the objects alive at start-up moved out of the collector's way (``gc.freeze``: configuration, profiles,
imported modules) and a young generation of 20,000, it runs a few times a minute. Cyclic garbage still
goes, only later. What start-up made is never looked at again: should part of it become cyclic garbage
(a configuration replaced at run time), it stays, once; what is made later is collected as before.

Not for ``hatang collector``: there MQTT messages from every agent, each up to the payload limit, end in
reference cycles (the MQTT client's message objects), and with a young generation of 20,000 a few hundred
large messages stayed in memory between collections (tests/e2e/test_hostile_payloads.py: 17 MiB per
300 rejected 60 kB topics). The agent's inbound traffic is SNMP datagrams and PUBACKs.
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
