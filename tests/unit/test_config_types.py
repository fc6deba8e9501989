"""hatang/config_types.py: the markers that carry the rules of the agent's config and profile dataclasses
(read by pydantic only while a file is validated) check in pydantic's own order, so a field gives the same
error as its pydantic-model predecessor did: the type and its constraints first, then the After functions
in order; Before functions run before all of it, the last one first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter

from agent import config as agent_config
from hatang import configfile
from hatang.config_errors import ConfigError
from hatang.config_types import After, Before, Constraints


def recorder(calls: list[str], name: str) -> Any:
    def record(value: Any) -> Any:
        calls.append(name)
        return value
    return record


def test_the_markers_run_in_pydantic_order() -> None:
    def order(make: Any) -> list[str]:
        calls: list[str] = []
        after, before = make(calls)
        adapter: TypeAdapter[Any] = TypeAdapter(Annotated[str, after("a1"), after("a2"), before("b1"),
                                                          before("b2")])
        adapter.validate_python("x")
        return calls

    native = order(lambda calls: (lambda n: AfterValidator(recorder(calls, n)),
                                  lambda n: BeforeValidator(recorder(calls, n))))
    ours = order(lambda calls: (lambda n: After(recorder(calls, n)), lambda n: Before(recorder(calls, n))))
    assert ours == native == ["b2", "b1", "a1", "a2"]


def test_constraints_are_checked_before_the_after_functions() -> None:
    calls: list[str] = []
    ours: TypeAdapter[Any] = TypeAdapter(Annotated[str, Constraints(pattern=r"^\d+$"),
                                                   After(recorder(calls, "after"))])
    native: TypeAdapter[Any] = TypeAdapter(Annotated[str, Field(pattern=r"^\d+$"),
                                                     AfterValidator(recorder([], "after"))])
    for adapter in (ours, native):
        with pytest.raises(Exception, match="String should match pattern"):
            adapter.validate_python("abc")
    assert calls == []


BASE = {"agent_id": "xa-dai-dinh", "site": {"province": "Vĩnh Phúc"}, "mqtt": {"url": "mqtt://127.0.0.1"},
        "buffer": {"path": "/tmp/hatang-buffer"}}


@pytest.mark.parametrize(("override", "key", "message"), [
    # the pattern is checked before the port: a value that breaks both names the pattern, as before
    ({"traps": {"listen": "localhost"}}, "traps.listen", "String should match pattern"),
    ({"traps": {"listen": "0.0.0.0:abc"}}, "traps.listen", "String should match pattern"),
    ({"mqtt": {"url": "http://broker:99999"}}, "mqtt.url", "String should match pattern"),
    ({"mqtt": {"url": "mqtt://broker:99999"}}, "mqtt.url", "port 99999 is out of range: use 1-65535"),
    ({"devices": [{"name": "sw", "address": "10.0.0.2", "profiles": []}]}, "devices[0].profiles",
     "List should have at least 1 item after validation, not 0"),
    ({"devices": [{"name": "sw", "address": "10.0.0.2", "profiles": ["auto", "system"]}]},
     "devices[0].profiles", "Value error, auto chooses every profile by the device"),
    ({"status": {"listen": "localhost"}}, "status.listen", "Value error, 'localhost' is not HOST:PORT"),
])
def test_agent_config_errors_keep_their_messages(override: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        configfile.validate(agent_config.AgentConfig, {**BASE, **override}, Path("agent.yaml"))
    assert len(error.value.problems) == 1, error.value.problems
    assert error.value.problems[0][0] == key and error.value.problems[0][1].startswith(message), \
        error.value.problems
