"""The shipped recording rule records exactly the office definition the report evaluates
(hatang/availability/definitions.py), so the board's connection history and the report cannot drift
apart; the states of devices and links (written late after outages) are not recorded."""

from __future__ import annotations

from pathlib import Path

import yaml

from hatang.availability.definitions import LOOKBACK, LOOKBACK_SECONDS, RECORDED, STEP_SECONDS, SUBJECTS

RULES = Path(__file__).resolve().parents[2] / "deploy/prometheus/rules/availability.rules.yml"


def test_each_subject_is_recorded_with_its_expression_every_step() -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    assert [group["interval"] for group in groups] == [f"{STEP_SECONDS // 60}m"]
    recorded = {rule["record"]: rule["expr"] for group in groups for rule in group["rules"]}
    assert recorded == {subject.record: subject.expr for subject in RECORDED}
    late = [s for s in SUBJECTS if s not in RECORDED]
    assert late and not [expr for expr in recorded.values() for s in late if s.source in expr]


def test_the_lookback_constants_agree() -> None:
    assert f"{LOOKBACK_SECONDS // 60}m" == LOOKBACK
