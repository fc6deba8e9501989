"""Inventory, cardinality cap, rate-limited reject log, state file and reload of the collector."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector import exposition, state
from collector.inventory import load
from collector.logguard import RejectLog
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from hatang.configfile import ConfigError
from wire.codec import Limits, encode_batch, encode_status
from wire.messages import AgentStatus, Family, PollBatch, Sample
from wire.topics import data_topic, status_topic

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_795_550_000.0


def _batch(agent: str, seq: int = 1, *, site: tuple[tuple[str, str], ...] = (("province", "Hà Nội"),),
           samples: int = 1, device: str = "sw") -> bytes:
    family = Family("hatang_interface_oper_status", "gauge", "h",
                    tuple(Sample((("if_index", str(i)),), 1) for i in range(samples)))
    return encode_batch(PollBatch(agent=agent, boot_id="b", seq=seq, ts=T0, device=device, interval=60,
                                  up=True, duration=0.1, site=site, families=(family,)))


def _store(tmp_path: Path | None = None, **kwargs: object) -> Store:
    inventory = load(ROOT / "deploy/examples/inventory.yaml")
    return Store(CollectorMetrics(), Limits(), inventory=inventory, clock=lambda: T0 + 1, **kwargs)  # type: ignore[arg-type]


def _series(store: Store) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(exposition.render(store, store.clock())):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_shipped_examples_load_as_yaml_and_csv() -> None:
    yaml_sites = load(ROOT / "deploy/examples/inventory.yaml").sites
    csv_sites = load(ROOT / "deploy/examples/inventory.csv").sites
    assert yaml_sites["xa-dai-dinh"] == csv_sites["xa-dai-dinh"]
    assert yaml_sites["xa-dai-dinh"].labels() == (
        ("commune", "Đại Đình"), ("district", "Tam Đảo (cũ)"), ("province", "Phú Thọ"))
    assert yaml_sites["ttdl-tinh"].district is None and csv_sites["ttdl-tinh"].commune is None


@pytest.mark.parametrize(("text", "suffix", "expected"), [
    ("sites:\n  - {agent: a1, province: P, latitude: 95}\n", ".yaml", "sites[0].latitude"),
    ("sites:\n  - {agent: a1, province: P, zone: x}\n", ".yaml", "sites[0].zone: unknown key"),
    ("sites:\n  - {agent: a1, province: P}\n  - {agent: a1, province: Q}\n", ".yaml", "listed twice"),
    ("agent,province,tinh\na1,P,x\n", ".csv", "unknown: tinh"),
    ("agent,province,latitude\na1,P,north\n", ".csv", "sites[0].latitude"),
    ("sites:\n  - {agent: 'Bad Id', province: P}\n", ".yaml", "sites[0].agent"),
])
def test_bad_inventories_name_file_entry_and_key(
    tmp_path: Path, text: str, suffix: str, expected: str
) -> None:
    path = tmp_path / f"inventory{suffix}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_inventory_labels_are_authoritative_and_unknown_agents_are_rejected() -> None:
    store = _store()
    # the agent claims another province: the inventory wins
    assert store.ingest(data_topic("xa-dai-dinh", "sw"), _batch("xa-dai-dinh")) == "accepted"
    assert store.ingest(data_topic("xa-la", "sw"), _batch("xa-la")) == "rejected:unknown_agent"
    assert store.ingest(status_topic("xa-la"), encode_status(
        AgentStatus("xa-la", "b", True, T0))) == "rejected:unknown_agent"
    series = _series(store)
    labels = frozenset({("agent", "xa-dai-dinh"), ("device", "sw"), ("if_index", "0"),
                        ("province", "Phú Thọ"), ("district", "Tam Đảo (cũ)"), ("commune", "Đại Đình")})
    assert series[("hatang_interface_oper_status", labels)] == 1
    assert not any(dict(k[1]).get("agent") == "xa-la" for k in series)


def test_every_inventory_agent_has_liveness_and_site_info_before_it_speaks() -> None:
    series = _series(_store())
    up = {dict(k[1])["agent"]: v for k, v in series.items() if k[0] == "hatang_agent_up"}
    assert up == {"ttdl-tinh": 0, "so-khcn": 0, "tam-dao-cu": 0, "xa-dai-dinh": 0, "phuong-vinh-yen": 0}
    info = [dict(k[1]) for k in series if k[0] == "hatang_site_info"]
    dai_dinh = next(i for i in info if i["agent"] == "xa-dai-dinh")
    assert dai_dinh == {"agent": "xa-dai-dinh", "province": "Phú Thọ", "district": "Tam Đảo (cũ)",
                        "commune": "Đại Đình", "site_name": "UBND xã Đại Đình", "role": "commune",
                        "latitude": "21.472000", "longitude": "105.631000"}


def test_series_per_agent_are_capped_and_other_agents_are_unaffected() -> None:
    store = Store(CollectorMetrics(), Limits(), max_series_per_agent=100, clock=lambda: T0 + 1)
    assert store.ingest(data_topic("xa-a", "sw1"), _batch("xa-a", 1, samples=60, device="sw1")) == "accepted"
    assert store.ingest(data_topic("xa-a", "sw2"), _batch("xa-a", 2, samples=60, device="sw2")) == \
        "rejected:cardinality"
    # replacing a device's poll counts its old series only once
    assert store.ingest(data_topic("xa-a", "sw1"), _batch("xa-a", 3, samples=90, device="sw1")) == "accepted"
    assert store.ingest(data_topic("xa-b", "sw1"), _batch("xa-b", 1, samples=90, device="sw1")) == "accepted"


def test_the_cap_counts_the_poll_success_sample_the_collector_adds() -> None:
    store = Store(CollectorMetrics(), Limits(), max_series_per_agent=100, clock=lambda: T0 + 1)
    assert store.ingest(data_topic("xa-a", "sw1"), _batch("xa-a", 1, samples=100, device="sw1")) == \
        "rejected:cardinality"  # 100 + hatang_device_poll_success
    assert store.ingest(data_topic("xa-a", "sw1"), _batch("xa-a", 2, samples=99, device="sw1")) == "accepted"


def test_reject_log_is_rate_limited_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    now = [T0]
    reject_log = RejectLog(lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for i in range(1000):
            reject_log("json", f"hatang/v1/agents/a{i}/data/x", "bad")
        reject_log("schema", "t", "bad")
        now[0] += 61
        reject_log("json", "t", "bad")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert "999 more rejected for json" in lines[2]


def test_state_file_restores_agents_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = Store(CollectorMetrics(), Limits(), clock=lambda: T0 + 1)
    first.ingest(data_topic("xa-a", "sw"), _batch("xa-a"))
    state.save(first, path)
    second = Store(CollectorMetrics(), Limits(), clock=lambda: T0 + 100)
    assert state.load(second, path) == 1
    series = _series(second)
    labels = frozenset({("agent", "xa-a"), ("province", "Hà Nội")})
    assert series[("hatang_agent_up", labels)] == 0
    assert series[("hatang_agent_last_seen_timestamp_seconds", labels)] == T0 + 1


def test_unreadable_state_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json", encoding="utf-8")
    assert state.load(Store(CollectorMetrics(), Limits(), clock=time.time), path) == 0
