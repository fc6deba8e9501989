"""The shipped alert rules are valid and behave as their unit tests say (real promtool), and every alert
keeps the contract the Alertmanager routing and the operators rely on: severity and area from fixed sets,
Vietnamese summary and description, a runbook_url into docs/vi/canh-bao.md that has a section for it, and
promtool tests that show it firing and not firing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.services import require_binary

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules"
RUNBOOK = ROOT / "docs/vi/canh-bao.md"
SEVERITIES = {"critical", "warning", "info"}
AREAS = {"network", "power", "server", "monitoring"}
RUNBOOK_URL = re.compile(
    r"^\{\{ with \$externalLabels\.runbook_base_url \}\}\{\{ \. \}\}\{\{ else \}\}http://hatang\.local/docs/vi"
    r"\{\{ end \}\}/canh-bao\.md#(?P<anchor>[a-z0-9-]+)$")
# Letters only Vietnamese uses among Latin scripts: ă â đ ê ô ơ ư and the tone-marked vowels (U+1EA0-1EF9).
VIETNAMESE = re.compile(r"[ăâđêôơưĂÂĐÊÔƠƯ\u1ea0-\u1ef9]")


def _alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load((RULES / "hatang.rules.yml").read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def _slug(heading: str) -> str:
    """The anchor GitHub, Gitea and GitLab give a Markdown heading (enough for ASCII headings)."""
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def _runbook_sections() -> set[str]:
    text = RUNBOOK.read_text(encoding="utf-8")
    return {_slug(line[3:]) for line in text.splitlines() if line.startswith("## ")}


def contract_problems(rule: dict[str, Any], sections: set[str]) -> list[str]:
    """What is wrong with one alerting rule, as readable sentences (empty: nothing)."""
    name = rule.get("alert", "?")
    labels = rule.get("labels") or {}
    annotations = rule.get("annotations") or {}
    problems = []
    if labels.get("severity") not in SEVERITIES:
        problems.append(f"{name}: severity {labels.get('severity')!r} not in {sorted(SEVERITIES)}")
    if labels.get("area") not in AREAS:
        problems.append(f"{name}: area {labels.get('area')!r} not in {sorted(AREAS)}")
    if set(annotations) != {"summary", "description", "runbook_url"}:
        problems.append(f"{name}: annotations {sorted(annotations)} are not summary, description, "
                        "runbook_url")
    summary = str(annotations.get("summary", ""))
    if " / " not in summary or not VIETNAMESE.search(summary.split(" / ")[0]):
        problems.append(f"{name}: summary is not 'Vietnamese / English': {summary!r}")
    if not VIETNAMESE.search(str(annotations.get("description", ""))):
        problems.append(f"{name}: description has no Vietnamese text")
    match = RUNBOOK_URL.match(str(annotations.get("runbook_url", "")))
    if match is None:
        problems.append(f"{name}: runbook_url does not use the external label runbook_base_url: "
                        f"{annotations.get('runbook_url')!r}")
    elif match["anchor"] != name.lower():
        problems.append(f"{name}: runbook_url anchor #{match['anchor']} is not #{name.lower()}")
    elif match["anchor"] not in sections:
        problems.append(f"{name}: docs/vi/canh-bao.md has no section '## {name}'")
    return problems


def test_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = require_binary("promtool", "prometheus")
    for rules in ("hatang.rules.yml", "hatang-group.rules.yml", "availability.rules.yml"):
        check = subprocess.run([promtool, "check", "rules", str(RULES / rules)],
                               capture_output=True, text=True, timeout=60, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
    for tests_file in ("hatang.rules.test.yml", "hatang-group.rules.test.yml", "availability.rules.test.yml"):
        tests = subprocess.run([promtool, "test", "rules", tests_file], cwd=RULES,
                               capture_output=True, text=True, timeout=120, check=False)
        assert tests.returncode == 0, tests.stdout + tests.stderr
        assert "SUCCESS" in tests.stdout


def test_every_alert_keeps_the_label_annotation_and_runbook_contract() -> None:
    alerts = _alerts()
    assert len(alerts) >= 25
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names)), "an alert name is used twice"
    sections = _runbook_sections()
    problems = [problem for rule in alerts for problem in contract_problems(rule, sections)]
    assert problems == []


def test_the_contract_check_can_fail() -> None:
    sections = _runbook_sections()
    good = next(rule for rule in _alerts() if rule["alert"] == "HatangLinkDown")
    assert contract_problems(good, sections) == []
    bad = {
        "alert": "HatangNoSuchAlert",
        "labels": {"severity": "page", "area": "network"},
        "annotations": {"summary": "Link down", "description": "Link down / link down",
                        "runbook_url": good["annotations"]["runbook_url"].replace("hatanglinkdown",
                                                                                  "hatangnosuchalert")},
    }
    problems = contract_problems(bad, sections)
    assert any("severity 'page'" in p for p in problems)
    assert any("summary is not" in p for p in problems)
    assert any("description has no Vietnamese" in p for p in problems)
    assert any("no section '## HatangNoSuchAlert'" in p for p in problems)
    wrong_anchor = {**good, "alert": "HatangLinkLoss"}
    assert any("anchor #hatanglinkdown" in p for p in contract_problems(wrong_anchor, sections))


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    doc = yaml.safe_load((RULES / "hatang.rules.test.yml").read_text(encoding="utf-8"))
    firing: set[str] = set()
    silent: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert sorted(names - firing) == [], "alerts never shown firing"
    assert sorted(names - silent) == [], "alerts never shown not firing"


def test_alert_label_contract_for_alertmanager() -> None:
    """Alerts about offices carry agent (by their expression: checked in the promtool tests); the
    centre-wide ones aggregate it away. Here: the names the routing knows exist, and the runbook base
    URL is configured as an external label."""
    by_name = {rule["alert"]: rule for rule in _alerts()}
    for name in ("HatangAgentOffline", "HatangAgentSilent", "HatangLinkDown", "HatangBrokerDown",
                 "HatangCollectorDown", "HatangDeviceDown"):
        assert name in by_name
    assert "agent" not in by_name["HatangBrokerDown"]["expr"].replace(" ", "").split("==")[0].lower()
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    assert prometheus["global"]["external_labels"]["runbook_base_url"] == "http://hatang.local/docs/vi"
    assert "/etc/prometheus/rules/hatang.rules.yml" in prometheus["rule_files"]
    assert "/etc/prometheus/rules/availability.rules.yml" in prometheus["rule_files"]
