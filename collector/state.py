"""What the collector knows about agents, kept in a small JSON file across restarts.

So ``hatang_agent_up`` (0) and ``hatang_agent_last_seen_timestamp_seconds`` exist for every agent ever
seen, right after a restart and while the agent stays silent: "agent offline" alerts keep firing instead
of silently resolving. Written atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from collector.store import AgentState, Store

log = logging.getLogger("hatang.collector.state")
VERSION = 1


def _offset(store: Store, agent: str) -> dict[str, float]:
    offset = store.clocks.estimate(agent)
    return {"clock_offset": offset} if offset is not None else {}


def save(store: Store, path: Path) -> None:
    doc = {
        "version": VERSION,
        "agents": {
            a.agent: {"last_seen": a.last_seen, "boot_id": a.boot_id, "version": a.version,
                      "site": dict(a.site), **_offset(store, a.agent)}
            for a in store.agents.values()
        },
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def load(store: Store, path: Path) -> int:
    """Restore agents (offline until they speak again); return how many. A bad file is logged, not fatal."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        agents = doc["agents"] if doc.get("version") == VERSION else {}
        restored = 0
        for agent, saved in agents.items():
            if agent in store.agents and store.agents[agent].last_seen:
                continue
            if store.inventory is not None and store.inventory.get(agent) is None:
                continue  # no longer listed
            state = store.agents.get(agent) or AgentState(agent)
            state.last_seen = float(saved.get("last_seen", 0.0))
            state.boot_id = str(saved.get("boot_id", ""))
            state.version = str(saved.get("version", ""))
            if not state.site:
                state.site = tuple(sorted((str(k), str(v)) for k, v in saved.get("site", {}).items()))
            store.agents[agent] = state
            offset = saved.get("clock_offset")
            if isinstance(offset, int | float) and store.clocks.estimate(agent) is None:
                store.clocks.restore(agent, float(offset))  # until its live messages say otherwise
                store.clocks.refresh(agent)
            restored += 1
        return restored
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable state file %s: %s", path, exc)
        return 0
