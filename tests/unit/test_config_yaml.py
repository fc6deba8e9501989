"""A key given twice in one YAML mapping is an error in every YAML file hatang loads (agent and collector
configs, profiles, inventories), naming the file, the key path and both lines: YAML itself would keep
the second silently (a second ``devices:`` list replaced the first)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent import config as agent_config
from agent.profiles import load_profiles
from collector import config as collector_config
from collector import inventory
from hatang.configfile import ConfigError, load_yaml

AGENT = """\
agent_id: xa-dai-dinh
site: {province: "Vĩnh Phúc"}
mqtt: {url: "mqtt://127.0.0.1:1883"}
buffer: {path: buffer}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def only_problem(path: Path, load: object) -> tuple[str, str]:
    with pytest.raises(ConfigError) as info:
        load(path)  # type: ignore[operator]
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path}: ")
    [problem] = info.value.problems
    return problem


def test_a_second_devices_list_is_an_error_not_a_silent_replacement(tmp_path: Path) -> None:
    path = write(tmp_path / "agent.yaml", AGENT + """\
devices:
  - {name: core-switch, address: 192.0.2.1}
devices:
  - {name: router, address: 192.0.2.2}
""")
    key, message = only_problem(path, agent_config.load)
    assert key == "devices"
    assert "key given twice (line 5 and line 7)" in message
    assert "merge the two into one 'devices:' or delete one" in message


def test_a_key_given_twice_deep_inside_names_its_key_path(tmp_path: Path) -> None:
    path = write(tmp_path / "agent.yaml", AGENT + """\
devices:
  - {name: core-switch, address: 192.0.2.1}
  - name: router
    address: 192.0.2.2
    snmp:
      community: public
      timeout: 2
      community: private
""")
    key, message = only_problem(path, agent_config.load)
    assert key == "devices[1].snmp.community"
    assert "line 10 and line 12" in message


def test_two_equal_keys_on_one_line_name_their_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "agent.yaml", AGENT.replace("buffer: {path: buffer}",
                                                         "buffer: {path: buffer, path: other}"))
    key, message = only_problem(path, agent_config.load)
    assert key == "buffer.path"
    assert "line 4, columns 10 and 24" in message


def test_every_duplicated_key_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "agent.yaml", AGENT + "agent_id: other\nsite: {province: A, province: B}\n")
    with pytest.raises(ConfigError) as info:
        agent_config.load(path)
    assert [key for key, _ in info.value.problems] == ["agent_id", "site", "site.province"]


def test_a_duplicated_key_in_a_collector_config_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "collector.yaml", """\
        mqtt: {url: "mqtt://127.0.0.1:1883"}
        listen: "127.0.0.1:9108"
        remote_write:
          - {url: "http://a:8428/api/v1/write"}
        listen: "0.0.0.0:9108"
        """)
    key, message = only_problem(path, collector_config.load)
    assert key == "listen"
    assert "line 2 and line 5" in message


def test_a_duplicated_key_in_a_profile_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "profiles" / "ups.yaml", """\
        name: ups
        scalars:
          - name: hatang_ups_battery_charge
            type: gauge
            oid: 1.3.6.1.2.1.33.1.2.4.0
            help: "Charge."
            oid: 1.3.6.1.2.1.33.1.2.5.0
        """)
    key, message = only_problem(path, lambda _: load_profiles(tmp_path / "profiles"))
    assert key == "scalars[0].oid"
    assert "line 5 and line 7" in message


def test_a_duplicated_key_in_an_inventory_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "inventory.yaml", """\
        sites:
          - agent: xa-dai-dinh
            province: "Vĩnh Phúc"
            province: "Phú Thọ"
        """)
    key, _ = only_problem(path, inventory.load)
    assert key == "sites[0].province"


def test_keys_yaml_reads_as_equal_are_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path / "x.yaml", "1: a\n1.0: b\n")
    key, message = only_problem(path, load_yaml)
    assert key == "1.0" and "line 1 and line 2" in message


def test_merge_keys_and_equal_keys_in_different_mappings_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "agent.yaml", AGENT + """\
x-snmp: &snmp {version: 2c, community: public, timeout: 2}
devices:
  - {name: a, address: 192.0.2.1, snmp: {<<: *snmp, timeout: 5}}
  - {name: b, address: 192.0.2.2, snmp: *snmp}
""")
    data = load_yaml(path)
    assert data["devices"][0]["snmp"] == {"version": "2c", "community": "public", "timeout": 5}
    assert data["devices"][1]["snmp"]["timeout"] == 2


def test_yaml_syntax_errors_are_still_reported_with_their_line(tmp_path: Path) -> None:
    key, message = only_problem(write(tmp_path / "x.yaml", "a: [1, 2\nb: 3\n"), load_yaml)
    assert key == "" and message.startswith("invalid YAML: line ")
    key, message = only_problem(write(tmp_path / "y.yaml", "a: *nowhere\n"), load_yaml)
    assert "undefined alias" in message
