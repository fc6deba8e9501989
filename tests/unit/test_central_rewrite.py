"""scripts/central-up's substitutions in the shipped files (docs/central-install.md, "Substitutions"):
the fleet directory, ROOT before the listed absolute paths, the ports only with --ports, comment lines
untouched, and an unknown Mosquitto listener port refused. Pure code: no file is installed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy" / "central"))  # as scripts/central-up

from central_configs import (
    DEFAULT_PORTS,
    DEPLOY,
    ROOTED_PREFIXES,
    check_mosquitto_listeners,
    rewrite,
)
from central_messages import CentralUpError

ROOT = Path("/srv/centre")
FLEET = Path("/srv/fleet")
PORTS = {"mqtt": 11883, "mqtts": 18883, "collector": 19108, "prometheus": 19090, "alertmanager": 19093}

# every shipped file central-up rewrites
SHIPPED = ["mosquitto/hatang.conf", "prometheus/prometheus.yml", "central/collector.yaml",
           "grafana/provisioning/dashboards/hatang.yaml", "grafana/provisioning/datasources/hatang.yaml"]


def shipped(name: str) -> str:
    return (DEPLOY / name).read_text(encoding="utf-8")


def test_fleet_directory_replaces_etc_hatang_fleet() -> None:
    text = ("certfile /etc/hatang/fleet/broker/server.crt\n"
            "password_file /etc/hatang/fleet/broker/mosquitto.passwd\n")
    assert rewrite(text, ROOT, None, FLEET) == (
        "certfile /srv/fleet/broker/server.crt\npassword_file /srv/fleet/broker/mosquitto.passwd\n")


def test_fleet_directory_by_default_is_under_root() -> None:
    assert rewrite("cafile /etc/hatang/fleet/broker/ca.crt\n", ROOT, None, ROOT / "etc/hatang/fleet") == (
        "cafile /srv/centre/etc/hatang/fleet/broker/ca.crt\n")


@pytest.mark.parametrize("prefix", ROOTED_PREFIXES)
def test_root_goes_before_each_listed_prefix(prefix: str) -> None:
    line = f"path: {prefix}some/file.yml\n"
    assert rewrite(line, ROOT, None, FLEET) == f"path: /srv/centre{prefix}some/file.yml\n"


def test_the_listed_prefixes_are_the_documented_ones() -> None:
    assert set(ROOTED_PREFIXES) == {"/etc/mosquitto/", "/var/lib/mosquitto/", "/etc/prometheus/",
                                    "/etc/hatang/", "/var/lib/hatang-collector/", "/var/lib/grafana/"}


@pytest.mark.parametrize("line", [
    "path: /usr/share/grafana/x\n",  # not a listed prefix
    "path: /var/lib/prometheus/metrics2\n",  # not listed either
    "path: /opt/etc/hatang/collector.yaml\n",  # the prefix inside a longer path
    "path: etc/hatang/collector.yaml\n",  # relative
    "url: http://example.org/etc/hatang/x\n",  # inside a URL
    "path: /etc/hatang\n",  # the directory itself, without the slash
])
def test_other_paths_are_left_alone(line: str) -> None:
    assert rewrite(line, ROOT, PORTS, FLEET) == line


def test_several_paths_on_one_line() -> None:
    line = "args: /etc/hatang/collector.yaml /var/lib/hatang-collector/state.json /etc/hatang/fleet/x\n"
    assert rewrite(line, ROOT, None, FLEET) == (
        "args: /srv/centre/etc/hatang/collector.yaml /srv/centre/var/lib/hatang-collector/state.json "
        "/srv/fleet/x\n")


def test_root_slash_changes_nothing_but_the_fleet() -> None:
    text = "acl_file /etc/mosquitto/hatang.acl\nkeyfile /etc/hatang/fleet/broker/server.key\n"
    assert rewrite(text, Path("/"), None, Path("/etc/hatang/fleet")) == text
    assert rewrite(text, Path("/"), None, FLEET) == (
        "acl_file /etc/mosquitto/hatang.acl\nkeyfile /srv/fleet/broker/server.key\n")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_unchanged_with_root_slash_default_fleet_and_no_ports(name: str) -> None:
    text = shipped(name)
    assert rewrite(text, Path("/"), None, Path("/etc/hatang/fleet")) == text


def test_ports_are_left_alone_without_ports() -> None:
    text = "listener 1883 127.0.0.1\nlistener 8883\nurl: mqtt://127.0.0.1:1883\nlisten: 127.0.0.1:9108\n"
    assert rewrite(text, ROOT, None, FLEET) == text


def test_loopback_ports_with_ports() -> None:
    text = ('url: "mqtt://127.0.0.1:1883"\nlisten: "127.0.0.1:9108"\n'
            '- url: "http://127.0.0.1:9090/api/v1/write"\ntargets: ["127.0.0.1:9093"]\n')
    assert rewrite(text, ROOT, PORTS, FLEET) == (
        'url: "mqtt://127.0.0.1:11883"\nlisten: "127.0.0.1:19108"\n'
        '- url: "http://127.0.0.1:19090/api/v1/write"\ntargets: ["127.0.0.1:19093"]\n')


def test_listener_lines_with_ports() -> None:
    text = "listener 1883 127.0.0.1\n  listener 8883\n"
    assert rewrite(text, ROOT, PORTS, FLEET) == "listener 11883 127.0.0.1\n  listener 18883\n"


@pytest.mark.parametrize("line", [
    "targets: [\"127.0.0.1:9100\"]\n",  # a loopback port that is not one of the centre's
    "url: http://10.0.0.1:9090/\n",  # not loopback
    "port 1883\n",  # not a listener line
    "url: mqtts://broker:8883\n",  # 8883 is changed in listener lines only
])
def test_other_ports_are_left_alone(line: str) -> None:
    assert rewrite(line, ROOT, PORTS, FLEET) == line


def test_default_ports_change_nothing() -> None:
    text = shipped("mosquitto/hatang.conf") + shipped("central/collector.yaml")
    assert rewrite(text, Path("/"), dict(DEFAULT_PORTS), Path("/etc/hatang/fleet")) == text


@pytest.mark.parametrize("comment", [
    "# listener 1883 127.0.0.1\n",
    "    # url: mqtt://127.0.0.1:1883 and /etc/hatang/collector.yaml\n",
    "#   install -m 0644 dashboards/*.json /var/lib/grafana/dashboards/hatang/\n",
    "# certfile /etc/hatang/fleet/broker/server.crt\n",
])
def test_comment_lines_are_untouched(comment: str) -> None:
    assert rewrite(comment, ROOT, PORTS, FLEET) == comment


def test_line_endings_and_a_missing_final_newline_are_kept() -> None:
    text = "acl_file /etc/mosquitto/hatang.acl\r\n# /etc/mosquitto/x\r\nlistener 1883"
    assert rewrite(text, ROOT, PORTS, FLEET) == (
        "acl_file /srv/centre/etc/mosquitto/hatang.acl\r\n# /etc/mosquitto/x\r\nlistener 11883")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_keep_nothing_of_the_host_or_the_default_ports(name: str) -> None:
    """Rewritten for ROOT, a fleet elsewhere and other ports, no non-comment line of a shipped file names
    a listed absolute path outside ROOT or a default port of the centre; the comments stay as shipped."""
    text = shipped(name)
    out = rewrite(text, ROOT, PORTS, FLEET)
    assert len(out.splitlines()) == len(text.splitlines())
    for before, after in zip(text.splitlines(), out.splitlines(), strict=True):
        if before.lstrip().startswith("#"):
            assert after == before
            continue
        for prefix in ("/etc/hatang/fleet/", *ROOTED_PREFIXES):  # ROOT/etc/... does not match
            assert not re.search(r"(?<![\w./-])" + re.escape(prefix), after), (name, after)
        for port in (1883, 9108, 9090, 9093):
            assert f"127.0.0.1:{port}" not in after, (name, after)
        assert not re.match(r"\s*listener\s+(1883|8883)\b", after), (name, after)


def test_the_shipped_mosquitto_listeners_are_known() -> None:
    check_mosquitto_listeners(shipped("mosquitto/hatang.conf"))


@pytest.mark.parametrize("conf", ["listener 1883 127.0.0.1\nlistener 8884\n", "  listener 1884\n"])
def test_an_unknown_listener_port_is_refused(conf: str) -> None:
    with pytest.raises(CentralUpError, match=r"listener ports \[(1884|8884)\] that central-up does not"):
        check_mosquitto_listeners(conf)


def test_a_commented_listener_is_not_checked() -> None:
    check_mosquitto_listeners("# listener 1884\nlistener 8883\n")
