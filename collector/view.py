"""What a reader of the store (the /metrics renderer, collector/exposition.py, and the status pages,
collector/status_model.py) may see of it.

Read-only protocols that :class:`collector.store.Store` and its agent and device states satisfy
structurally, so that readers never import the store; and the one rule of reading: when a device's data
is fresh enough to be shown. The single write a reader makes is :meth:`StoreView.mark_served`, telling
the store which polls a rendering showed (the store remote-writes a live poll replaced before that).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

from collector.inventory import Inventory
from wire.messages import AgentStatus, Labels


class AgentView(Protocol):
    @property
    def agent(self) -> str: ...
    @property
    def online(self) -> bool: ...
    @property
    def last_seen(self) -> float: ...  # collector time of the last message from this agent
    @property
    def site(self) -> Labels: ...
    @property
    def version(self) -> str: ...  # hatang version from the agent's status messages ("" until one arrives)
    @property
    def boot_id(self) -> str: ...
    @property
    def status(self) -> AgentStatus | None: ...  # its latest birth or will (buffer, config version)


class DeviceView(Protocol):
    """The newest live poll of one device (or of an agent's own metrics: ``is_self``)."""

    @property
    def agent(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def site(self) -> Labels: ...
    @property
    def interval(self) -> float: ...
    @property
    def ts(self) -> float: ...  # agent's poll time
    @property
    def received(self) -> float: ...  # collector time it arrived
    @property
    def up(self) -> bool: ...
    @property
    def duration(self) -> float: ...
    @property
    def errors(self) -> int: ...
    @property
    def kind(self) -> str: ...  # "device" or "probe"
    @property
    def blocks(self) -> Mapping[str, bytes]: ...  # metric name -> its exposition lines, UTF-8
    @property
    def meta(self) -> Mapping[str, tuple[str, str]]: ...  # metric name -> (type, help)
    @property
    def is_self(self) -> bool: ...


class ClockView(Protocol):
    def estimate(self, agent: str) -> float | None: ...  # agent clock minus collector clock, seconds
    def correction(self, agent: str) -> float: ...  # what is taken off the agent's timestamps
    @property
    def reference(self) -> float: ...  # reference time minus the collector's clock (0: collector right)


DeviceT = TypeVar("DeviceT", bound=DeviceView)


class StoreView(Protocol[DeviceT]):
    """The store as a reader sees it; ``DeviceT`` is the store's own device state type."""

    @property
    def agents(self) -> Mapping[str, AgentView]: ...
    @property
    def devices(self) -> Mapping[tuple[str, str], DeviceT]: ...
    @property
    def traps(self) -> Mapping[tuple[str, str, str], Sequence[float]]: ...  # -> [count, last unix time]
    @property
    def trap_sites(self) -> Mapping[str, Labels]: ...
    @property
    def inventory(self) -> Inventory | None: ...
    @property
    def clocks(self) -> ClockView: ...
    @property
    def broker_connected(self) -> bool: ...
    @property
    def stale_after_intervals(self) -> float: ...

    def mark_served(self, states: Iterable[DeviceT]) -> None:
        """These polls are in a /metrics rendering: a scrape shows them."""
        ...


def is_fresh(store: StoreView[DeviceT], state: DeviceT, now: float) -> bool:
    """Whether a device's data may be shown: recent, its agent online, the broker connected."""
    agent = store.agents.get(state.agent)
    return (
        store.broker_connected
        and agent is not None
        and agent.online
        and now - state.received <= store.stale_after_intervals * state.interval
    )
