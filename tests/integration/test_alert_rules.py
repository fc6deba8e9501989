"""The shipped alert rules are valid and behave as their unit tests say (real promtool)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.services import require_binary

pytestmark = pytest.mark.integration
RULES = Path(__file__).resolve().parents[2] / "deploy/prometheus/rules"


def test_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = require_binary("promtool", "prometheus")
    check = subprocess.run([promtool, "check", "rules", str(RULES / "hatang.rules.yml")],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run([promtool, "test", "rules", "hatang.rules.test.yml"], cwd=RULES,
                           capture_output=True, text=True, timeout=120, check=False)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "SUCCESS" in tests.stdout


def test_every_alert_has_a_vietnamese_summary_and_a_severity() -> None:
    import yaml

    doc = yaml.safe_load((RULES / "hatang.rules.yml").read_text(encoding="utf-8"))
    alerts = [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]
    assert len(alerts) >= 10
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        summary = rule["annotations"]["summary"]
        assert " / " in summary and not summary.split(" / ")[0].isascii(), rule["alert"]
