"""deploy/alertmanager/ against a real Alertmanager 0.25 on loopback: config check, routing tree,
inhibition that follows the network, and Vietnamese notifications delivered to a real SMTP server
(aiosmtpd), a webhook and a fake Telegram Bot API, all on 127.0.0.1."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.support.alerting import (
    SHIPPED,
    TELEGRAM_REPLY,
    TELEGRAM_TOKEN,
    Alertmanager,
    HttpRequest,
    HttpSink,
    SmtpSink,
    amtool,
    render_test_config,
    start_alertmanager,
)
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    # the loopback SMTP sink requires AUTH without TLS on purpose (Alertmanager's password file is tested)
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

SMTP_USER = "canh-bao@example.invalid"
SMTP_PASSWORD = "mật-khẩu-thử"
WEBHOOK_TOKEN = "webhook-token-thu"
DEADLINE = 20.0

T = TypeVar("T")
SITE = {"province": "Tuyên Quang", "commune": "Thượng Lâm"}


@dataclass
class Sinks:
    smtp: SmtpSink
    webhook: HttpSink
    telegram: HttpSink
    config: Path


@pytest.fixture(scope="module")
def sinks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sinks]:
    smtp = SmtpSink(SMTP_USER, SMTP_PASSWORD)
    webhook = HttpSink({})
    telegram = HttpSink(TELEGRAM_REPLY)
    try:
        config = render_test_config(
            tmp_path_factory.mktemp("alertmanager-config"), smtp_port=smtp.port,
            webhook_url=f"{webhook.url}/hatang/alertmanager", telegram_url=telegram.url,
            smtp_password=SMTP_PASSWORD, webhook_token=WEBHOOK_TOKEN,
        )
        yield Sinks(smtp, webhook, telegram, config)
    finally:
        smtp.close()
        webhook.close()
        telegram.close()


@pytest.fixture
def alertmanager(sinks: Sinks, tmp_path: Path) -> Iterator[Alertmanager]:
    """A fresh Alertmanager per test (no alerts left over from another test), stopped by PID."""
    am = start_alertmanager(tmp_path / "am", sinks.config)
    try:
        yield am
    finally:
        am.stop()


def alert(name: str, severity: str, area: str, *, agent: str | None = None, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    all_labels = {"alertname": name, "severity": severity, "area": area, **labels}
    if agent is not None:
        all_labels["agent"] = agent
    return {
        "labels": all_labels,
        "annotations": {"summary": f"{name} / test", "description": f"{name} (mô tả)",
                        "runbook_url": f"https://wiki.example.invalid/runbook/{name}"},
        # Prometheus sends startsAt = the moment the alert fired (rules FiredAt), so a new alert waits
        # group_wait. One older than group_wait is flushed at once (Alertmanager issue #4064), before the
        # inhibitor may have seen its source alert posted in the same batch: a race this test hit.
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
        "generatorURL": "http://127.0.0.1:9/graph",
    }


def status_of(am: Alertmanager) -> dict[tuple[str, str], dict[str, Any]]:
    return {(a["labels"]["alertname"], a["labels"].get("agent", "")): a["status"] for a in am.alerts()}


def webhook_alerts(sinks: Sinks, agents: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """(payload status, alert) for every alert of ``agents`` the webhook received."""
    out = []
    for request in sinks.webhook.received():
        payload = request.json()
        for a in payload["alerts"]:
            if a["labels"].get("agent") in agents:
                out.append((a["status"], a))
    return out


# --------------------------------------------------------------------------------------------------
# config and routing (amtool)


def test_shipped_config_and_test_copy_pass_amtool_check_config(sinks: Sinks) -> None:
    for path in (SHIPPED / "hatang.yml", sinks.config):
        check = subprocess.run([amtool(), "check-config", str(path)], capture_output=True, text=True,
                               timeout=60, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        for expected in ("SUCCESS", "2 inhibit rules", "5 receivers", "1 templates"):
            assert expected in check.stdout, check.stdout


def test_shipped_config_names_only_placeholder_hosts() -> None:
    text = (SHIPPED / "hatang.yml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    assert doc["global"]["smtp_smarthost"] == "smtp.example.invalid:587"
    for receiver in doc["receivers"]:
        for mail in receiver.get("email_configs", []):
            assert mail["to"].endswith("@example.invalid")
        for tg in receiver.get("telegram_configs", []):
            assert "THAY_BANG" in tg["bot_token"] and "api_url" not in tg
        for hook in receiver.get("webhook_configs", []):
            assert ".example.invalid/" in hook["url"]
    assert "telegram_api_url" not in doc["global"]
    assert "auth_password" not in text.replace("auth_password_file", "")  # no inline SMTP password


ROUTES = [
    # labels -> receivers in routing order (luu-tru = the webhook, always first, continue: true)
    ({"alertname": "HatangDeviceDown", "severity": "critical", "area": "network", "agent": "xa-a"},
     "luu-tru,truc-ca"),
    ({"alertname": "HatangLinkDown", "severity": "critical", "area": "network", "agent": "xa-a"},
     "luu-tru,truc-ca"),
    ({"alertname": "HatangUpsOnBattery", "severity": "critical", "area": "power", "agent": "xa-a"},
     "luu-tru,truc-ca"),
    ({"alertname": "HatangDeviceDown", "severity": "warning", "area": "server", "agent": "xa-a"},
     "luu-tru,van-hanh"),
    ({"alertname": "HatangDeviceRebooted", "severity": "info", "area": "network", "agent": "xa-a"},
     "luu-tru,ban-tin"),
    ({"alertname": "HatangBrokerDown", "severity": "critical", "area": "monitoring"},
     "luu-tru,nhom-giam-sat"),
    ({"alertname": "HatangAgentQueueDropping", "severity": "warning", "area": "monitoring", "agent": "xa-a"},
     "luu-tru,nhom-giam-sat"),
    ({"alertname": "HatangSomething", "severity": "info", "area": "monitoring"}, "luu-tru,ban-tin"),
    # office-level alerts as labelled by deploy/prometheus/rules/hatang.rules.yml: an unreachable office
    # is the operators' concern (area=network); a connected but silent agent is the hatang team's
    ({"alertname": "HatangAgentOffline", "severity": "warning", "area": "network", "agent": "xa-a"},
     "luu-tru,van-hanh"),
    ({"alertname": "HatangAgentSilent", "severity": "warning", "area": "monitoring", "agent": "xa-a"},
     "luu-tru,nhom-giam-sat"),
    # no area / no severity: never dropped
    ({"alertname": "HatangNew", "severity": "critical"}, "luu-tru,truc-ca"),
    ({"alertname": "HatangNew"}, "luu-tru,van-hanh"),
]


@pytest.mark.parametrize(("labels", "receivers"), ROUTES, ids=[f"{r[0]['alertname']}-{r[1]}" for r in ROUTES])
def test_routing_tree(labels: dict[str, str], receivers: str) -> None:
    argv = [amtool(), "config", "routes", "test", f"--config.file={SHIPPED / 'hatang.yml'}",
            f"--verify.receivers={receivers}", *(f"{k}={v}" for k, v in labels.items())]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


# --------------------------------------------------------------------------------------------------
# inhibition (real Alertmanager, API v2)


@pytest.mark.parametrize("office_alert", ["HatangAgentOffline", "HatangLinkDown"])
def test_unreachable_office_mutes_only_its_own_devices(
    alertmanager: Alertmanager, sinks: Sinks, office_alert: str
) -> None:
    a, b = f"xa-a-{office_alert.lower()}", f"xa-b-{office_alert.lower()}"
    alertmanager.post_alerts([
        alert(office_alert, "critical", "network", agent=a, **SITE),
        alert("HatangDeviceDown", "warning", "network", agent=a, device="core-switch", **SITE),
        alert("HatangUpsOnBattery", "critical", "power", agent=a, device="ups-1", **SITE),
        alert("HatangAgentSilent", "warning", "network", agent=a, **SITE),
        alert("HatangDeviceDown", "warning", "network", agent=b, device="core-switch", **SITE),
        alert("HatangAgentQueueDropping", "warning", "monitoring", agent=a, **SITE),
    ])

    def settled() -> dict[tuple[str, str], dict[str, Any]] | None:
        status = status_of(alertmanager)
        return status if len(status) == 6 and status[("HatangDeviceDown", a)]["inhibitedBy"] else None

    status = wait_until(settled, DEADLINE, message="xa-a's device alert to be inhibited")
    muted = {key for key, s in status.items() if s["inhibitedBy"]}
    assert muted == {("HatangDeviceDown", a), ("HatangUpsOnBattery", a)}
    assert status[("HatangDeviceDown", a)]["state"] == "suppressed"
    # the office-level alert, the neighbour's device and the monitoring-area alert stay active
    for key in [(office_alert, a), ("HatangAgentSilent", a), ("HatangDeviceDown", b),
                ("HatangAgentQueueDropping", a)]:
        assert status[key]["state"] == "active" and not status[key]["inhibitedBy"], (key, status[key])

    # and notifications follow: xa-b's device alert reaches the webhook, xa-a's never does
    def delivered() -> set[tuple[str, str]] | None:
        got = {(x["labels"]["alertname"], x["labels"]["agent"]) for _, x in webhook_alerts(sinks, {a, b})}
        return got if {(office_alert, a), ("HatangDeviceDown", b)} <= got else None

    got = wait_until(delivered, DEADLINE, message="webhook notifications of the office and the neighbour")
    assert ("HatangDeviceDown", a) not in got and ("HatangUpsOnBattery", a) not in got


def test_broker_down_mutes_every_agent_offline_and_silent(alertmanager: Alertmanager) -> None:
    alertmanager.post_alerts([
        alert("HatangBrokerDown", "critical", "monitoring"),
        alert("HatangAgentOffline", "warning", "network", agent="xa-c", **SITE),
        alert("HatangAgentSilent", "warning", "network", agent="xa-d", **SITE),
        alert("HatangDeviceDown", "warning", "network", agent="xa-e", device="sw", **SITE),
        alert("HatangCollectorDown", "critical", "monitoring"),
    ])

    def settled() -> dict[tuple[str, str], dict[str, Any]] | None:
        status = status_of(alertmanager)
        muted = {key for key, s in status.items() if s["inhibitedBy"]}
        return status if len(status) == 5 and len(muted) >= 2 else None

    status = wait_until(settled, DEADLINE, message="agent alerts to be inhibited by the broker alert")
    assert {key for key, s in status.items() if s["inhibitedBy"]} == {
        ("HatangAgentOffline", "xa-c"), ("HatangAgentSilent", "xa-d")}
    for key in [("HatangBrokerDown", ""), ("HatangCollectorDown", ""), ("HatangDeviceDown", "xa-e")]:
        assert status[key]["state"] == "active", (key, status[key])


def test_device_alert_without_agent_is_not_muted_by_an_office(alertmanager: Alertmanager) -> None:
    """The `equal: [agent]` trap: an office alert must not mute alerts that lack `agent`."""
    alertmanager.post_alerts([
        alert("HatangAgentOffline", "warning", "network", agent="xa-f", **SITE),
        alert("HatangDeviceDown", "warning", "network", device="orphan"),
        alert("HatangDeviceDown", "warning", "network", agent="xa-f", device="sw", **SITE),
    ])
    def settled() -> dict[tuple[str, str], dict[str, Any]] | None:
        status = status_of(alertmanager)
        return status if len(status) == 3 and status[("HatangDeviceDown", "xa-f")]["inhibitedBy"] else None

    status = wait_until(settled, DEADLINE, message="xa-f's device alert to be inhibited")
    assert status[("HatangDeviceDown", "")]["state"] == "active"


# --------------------------------------------------------------------------------------------------
# notifications in Vietnamese


def mails_for(sinks: Sinks, agent: str) -> list[tuple[list[str], EmailMessage]]:
    return [(to, m) for to, m in sinks.smtp.received() if f"agent {agent}" in str(m["Subject"])]


def telegram_for(sinks: Sinks, agent: str) -> list[tuple[HttpRequest, dict[str, Any]]]:
    out = []
    for request in sinks.telegram.received():
        body = request.json()
        if f"agent {agent}" in body["text"]:
            out.append((request, body))
    return out


def at_least(n: int, items: list[T]) -> list[T] | None:
    return items if len(items) >= n else None


def body_text(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, message
    content = part.get_content()
    assert isinstance(content, str)
    return content


def test_critical_alert_reaches_email_telegram_and_webhook_in_vietnamese(
    alertmanager: Alertmanager, sinks: Sinks
) -> None:
    agent = "xa-thuong-lam"
    firing = {
        "labels": {"alertname": "HatangDeviceDown", "severity": "critical", "area": "network",
                   "agent": agent, "device": "core-switch", **SITE},
        "annotations": {
            "summary": f"Thiết bị core-switch tại {agent} không trả lời / device down",
            "description": "Thiết bị core-switch (Thượng Lâm Tuyên Quang) không trả lời SNMP < 5 phút "
                           "& agent vẫn chạy.",
            "runbook_url": "https://wiki.example.invalid/runbook/HatangDeviceDown",
        },
        "startsAt": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "endsAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    alertmanager.post_alerts([firing])
    office = f"Thượng Lâm, Tuyên Quang (agent {agent})"

    # e-mail to the on-call address, authenticated with the password from auth_password_file
    to, mail = wait_until(lambda: mails_for(sinks, agent), DEADLINE, message="the e-mail")[0]
    assert to == ["truc-ca@example.invalid"]
    assert str(mail["Subject"]) == (
        f"[ĐANG XẢY RA] NGHIÊM TRỌNG: Thiết bị core-switch tại {agent} không trả lời - {office}")
    text = body_text(mail, "plain")
    assert "Trạng thái: ĐANG XẢY RA" in text
    assert "Mức độ: NGHIÊM TRỌNG - Lĩnh vực: Mạng" in text
    assert f"Điểm (xã/phường/đơn vị): {office}" in text
    assert "Thiết bị: core-switch" in text
    assert "không trả lời SNMP < 5 phút & agent vẫn chạy." in text
    assert "Hướng dẫn xử lý: https://wiki.example.invalid/runbook/HatangDeviceDown" in text
    html = body_text(mail, "html")
    assert '<meta charset="utf-8">' in html and office in html
    assert "không trả lời SNMP &lt; 5 phút &amp; agent vẫn chạy." in html
    assert ("PLAIN", True) in sinks.smtp.logins or ("LOGIN", True) in sinks.smtp.logins, sinks.smtp.logins

    # Telegram: POST {api_url}/bot{token}/sendMessage, HTML mode, values escaped
    request, message = wait_until(lambda: telegram_for(sinks, agent), DEADLINE,
                                  message="the Telegram message")[0]
    assert request.path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    assert int(message["chat_id"]) == -1000000000001
    assert message["parse_mode"] == "HTML"
    assert str(message.get("disable_notification", "false")) == "false"
    assert "🔴 <b>ĐANG XẢY RA - NGHIÊM TRỌNG</b>" in message["text"]
    assert f"<b>Thiết bị core-switch tại {agent} không trả lời / device down</b>" in message["text"]
    assert f"Điểm: {office}" in message["text"]
    assert "SNMP &lt; 5 phút &amp; agent" in message["text"]
    link = '<a href="https://wiki.example.invalid/runbook/HatangDeviceDown">Hướng dẫn xử lý</a>'
    assert link in message["text"]

    # webhook: Alertmanager's JSON with the labels and annotations as they are, bearer token from the file
    webhook = wait_until(lambda: [r for r in sinks.webhook.received() if agent in r.body.decode()], DEADLINE,
                         message="the webhook call")[0]
    assert webhook.path == "/hatang/alertmanager"
    assert webhook.headers["Authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    payload = webhook.json()
    assert (payload["version"], payload["status"], payload["receiver"]) == ("4", "firing", "luu-tru")
    assert payload["groupLabels"] == {"alertname": "HatangDeviceDown", "agent": agent}
    [sent] = payload["alerts"]
    assert sent["labels"]["commune"] == "Thượng Lâm" and sent["annotations"] == firing["annotations"]

    # resolved: every channel says so
    resolved = {**firing, "endsAt": datetime.now(UTC).isoformat()}
    alertmanager.post_alerts([resolved])
    mails = wait_until(lambda: at_least(2, mails_for(sinks, agent)), DEADLINE,
                       message="the 'resolved' e-mail")
    assert str(mails[-1][1]["Subject"]).startswith("[ĐÃ KHẮC PHỤC] NGHIÊM TRỌNG: Thiết bị core-switch")
    assert "Kết thúc: " in body_text(mails[-1][1], "plain")
    tg = wait_until(lambda: at_least(2, telegram_for(sinks, agent)), DEADLINE,
                    message="the 'resolved' Telegram message")
    assert tg[-1][1]["text"].startswith("✅ <b>ĐÃ KHẮC PHỤC - NGHIÊM TRỌNG</b>")
    wait_until(lambda: ("resolved", sent["labels"]["agent"]) in
               {(s, x["labels"]["agent"]) for s, x in webhook_alerts(sinks, {agent})}, DEADLINE,
               message="the 'resolved' webhook call")


def test_warning_goes_to_operations_mail_and_a_silent_telegram(
    alertmanager: Alertmanager, sinks: Sinks
) -> None:
    agent = "phuong-an-tuong"
    site = {"province": "Tuyên Quang", "commune": "Phường An Tường"}
    alertmanager.post_alerts([
        alert("HatangLinkLoss", "warning", "network", agent=agent, device="router", **site)])
    to, mail = wait_until(lambda: mails_for(sinks, agent), DEADLINE, message="the e-mail")[0]
    assert to == ["van-hanh@example.invalid"]
    assert str(mail["Subject"]) == (
        f"[ĐANG XẢY RA] CẢNH BÁO: HatangLinkLoss - Phường An Tường, Tuyên Quang (agent {agent})")
    _, message = wait_until(lambda: telegram_for(sinks, agent), DEADLINE, message="the Telegram message")[0]
    assert int(message["chat_id"]) == -1000000000002
    assert message["disable_notification"] == "true"  # telebot sends every parameter as a string
    assert message["text"].startswith("🟠 <b>ĐANG XẢY RA - CẢNH BÁO</b>")
