"""``hatang_agent_info``: one series per known agent with the version of its birth message."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from collector import exposition
from collector.inventory import load
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from wire.codec import Limits, encode_batch, encode_status
from wire.messages import AgentStatus, Family, PollBatch, Sample
from wire.topics import data_topic, status_topic

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_795_550_000.0
SITE = (("commune", "Đại Đình"), ("district", "Tam Đảo"), ("province", "Vĩnh Phúc"))

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _status(agent: str, online: bool, version: str, boot: str = "b1", config_version: str = "") -> bytes:
    return encode_status(AgentStatus(agent, boot, online, T0, version, SITE, ("sw",),
                                     config_version=config_version))


def _series(store: Store) -> Series:
    out: Series = {}
    for family in text_string_to_metric_families(exposition.render(store, store.clock())):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"series repeated: {key}"
            out[key] = s.value
    return out


def _info(series: Series) -> dict[str, tuple[dict[str, str], float]]:
    """agent -> (labels, value) of every hatang_agent_info series."""
    found: dict[str, tuple[dict[str, str], float]] = {}
    for (name, labels), value in series.items():
        if name == "hatang_agent_info":
            as_dict = dict(labels)
            assert as_dict["agent"] not in found, f"two hatang_agent_info series for {as_dict['agent']}"
            found[as_dict["agent"]] = (as_dict, value)
    return found


def _store(**kwargs: object) -> Store:
    return Store(CollectorMetrics(), Limits(), clock=lambda: T0 + 1, **kwargs)  # type: ignore[arg-type]


def test_agent_info_carries_the_birth_version_and_site_labels() -> None:
    store = _store()
    assert store.ingest(status_topic("xa-dai-dinh"), _status("xa-dai-dinh", True, "1.4.2")) == "accepted"
    info = _info(_series(store))
    assert info == {"xa-dai-dinh": ({"agent": "xa-dai-dinh", "version": "1.4.2", "config_version": "",
                                     **dict(SITE)}, 1)}


def test_agent_info_carries_the_applied_configuration_revision() -> None:
    """docs/remote-config.md: the birth's config_version is the revision of the centre's configuration
    the agent runs (or a hash of its agent.yaml); hatang_agent_info follows it without a second series."""
    store = _store()
    store.ingest(status_topic("xa-dai-dinh"), _status("xa-dai-dinh", True, "1.4.2", config_version="6"))
    assert _info(_series(store))["xa-dai-dinh"][0]["config_version"] == "6"
    store.ingest(status_topic("xa-dai-dinh"), _status("xa-dai-dinh", True, "1.4.2", config_version="7"))
    info = _info(_series(store))
    assert info["xa-dai-dinh"][0]["config_version"] == "7" and len(info) == 1


def test_agent_info_is_typed_gauge_next_to_agent_up() -> None:
    store = _store()
    store.ingest(status_topic("xa-dai-dinh"), _status("xa-dai-dinh", True, "1.4.2"))
    text = exposition.render(store, store.clock())
    assert "# TYPE hatang_agent_info gauge\n" in text
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert names.index("hatang_agent_info") == names.index("hatang_agent_up") + 1


def test_agent_info_stays_when_the_agent_goes_offline_and_follows_a_new_version() -> None:
    store = _store()
    store.ingest(status_topic("xa-a"), _status("xa-a", True, "1.4.2"))
    store.ingest(status_topic("xa-a"), _status("xa-a", False, "1.4.2"))
    series = _series(store)
    assert _info(series)["xa-a"][0]["version"] == "1.4.2"
    assert series[("hatang_agent_up", frozenset({("agent", "xa-a"), *SITE}))] == 0
    # an upgrade: the next boot's birth carries the new version; still one series per agent
    store.ingest(status_topic("xa-a"), _status("xa-a", True, "1.5.0", boot="b2"))
    assert _info(_series(store))["xa-a"][0]["version"] == "1.5.0"


def test_a_status_without_version_keeps_the_known_one() -> None:
    store = _store()
    store.ingest(status_topic("xa-a"), _status("xa-a", True, "1.4.2"))
    store.ingest(status_topic("xa-a"), _status("xa-a", False, ""))  # an older agent's will: no version
    assert _info(_series(store))["xa-a"][0]["version"] == "1.4.2"


def test_every_known_agent_has_one_info_series_even_before_its_birth() -> None:
    store = _store(inventory=load(ROOT / "deploy/examples/inventory.yaml"))
    store.ingest(status_topic("xa-dai-dinh"), _status("xa-dai-dinh", True, "1.4.2"))
    info = _info(_series(store))
    assert set(info) == set(store.agents) and len(info) >= 2
    assert info["xa-dai-dinh"][0]["version"] == "1.4.2"
    # the inventory's site labels win over the agent's claim, here too
    assert info["xa-dai-dinh"][0]["province"] == "Phú Thọ"
    silent = [agent for agent in info if agent != "xa-dai-dinh"]
    # never spoke: no version known (an empty label value is an absent label for Prometheus)
    assert all(info[a][0].get("version", "") == "" and info[a][1] == 1 for a in silent)


def test_agent_info_does_not_change_the_device_series() -> None:
    store = _store()
    family = Family("hatang_device_uptime_seconds", "gauge", "h", (Sample((), 12.5),))
    batch = encode_batch(PollBatch(agent="xa-a", boot_id="b1", seq=1, ts=T0, device="sw", interval=60,
                                   up=True, duration=0.1, site=SITE, families=(family,)))
    assert store.ingest(data_topic("xa-a", "sw"), batch) == "accepted"
    series = _series(store)
    # data before any birth: the agent is known (and online), its version not yet
    assert _info(series)["xa-a"][0].get("version", "") == ""
    assert series[("hatang_device_uptime_seconds", frozenset({("agent", "xa-a"), ("device", "sw"), *SITE}))] \
        == 12.5
