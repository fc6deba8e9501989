"""What the boards share about the metrics: the metric contract and the PromQL written against it.

Which template-variable labels each hatang metric carries (`labels_of`, after docs/metrics.md), the
`Scope` of a board's chained query variables that turns a metric name into a filtered selector, the
expressions several boards use (clamped interface traffic, utilisation, critical interfaces), the
threshold steps that colour those values and the value mappings that name the metrics' state codes.
This module is the bottom layer of the package: it imports nothing from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SITE_LABELS = ("province", "district", "commune")


# --- the metric contract --------------------------------------------------------------------------------


def labels_of(metric: str) -> tuple[str, ...]:
    """The template-variable labels a hatang metric carries (docs/metrics.md)."""
    if metric.startswith("hatang_collector_"):
        return ()
    if metric.startswith("hatang_agent_") or metric == "hatang_site_info":
        return (*SITE_LABELS, "agent")
    extra: tuple[str, ...] = ()
    if metric.startswith("hatang_interface_"):
        extra = ("if_name",)
    elif metric.startswith("hatang_probe_"):
        extra = ("target",)
    return (*SITE_LABELS, "agent", "device", *extra)


@dataclass
class Scope:
    """The query variables of one board, in chain order."""

    variables: tuple[str, ...]

    def sel(self, metric: str, *matchers: str) -> str:
        """`metric{...}` filtered by every board variable whose label the metric has, plus `matchers`."""
        parts = [f'{v}=~"${v}"' for v in self.variables if v in labels_of(metric)]
        parts += list(matchers)
        return f"{metric}{{{','.join(parts)}}}" if parts else metric


def chain(*names: str) -> Scope:
    return Scope(names)


# --- common expressions ---------------------------------------------------------------------------------


def traffic_bps(s: Scope, direction: str) -> str:
    """Bits per second of each interface, clamped to its speed so a counter reset never draws a spike.

    clamp_max() only takes a scalar, so the clamp is written with comparisons on identical label sets
    (rate and speed series of an interface carry exactly the same labels): the rate where it is within
    the speed, else the speed; interfaces reporting no speed (0) keep their rate.
    """
    rate = f"rate({s.sel(f'hatang_interface_{direction}_bytes_total')}[$__rate_interval]) * 8"
    speed = f"(({s.sel('hatang_interface_speed_bytes')} > 0) * 8)"
    return f"((({rate}) <= {speed}) or ({speed} < ({rate})) or ({rate}))"


def utilisation(s: Scope, direction: str) -> str:
    """Share of the interface speed in use, 0..1 (interfaces with an unknown speed left out)."""
    rate = f"rate({s.sel(f'hatang_interface_{direction}_bytes_total')}[$__rate_interval])"
    return f"clamp_max({rate} / ({s.sel('hatang_interface_speed_bytes')} > 0), 1)"


def busier_utilisation(s: Scope) -> str:
    """The larger of the in and out utilisation of each interface (`(a >= b) or b`: an element-wise max;
    a plain `or` of the two would keep only the inbound series, their label sets being identical)."""
    return f"(({utilisation(s, 'in')} >= {utilisation(s, 'out')}) or {utilisation(s, 'out')})"


def critical(s: Scope) -> str:
    return f"and on(agent, device, if_index) {s.sel('hatang_interface_critical')}"


# --- device health (the normalised families every vendor profile publishes, docs/metrics.md) ------------

# The thresholds of the health alerts (deploy/prometheus/rules/hatang.rules.yml, HatangDevice*High): the
# boards colour and list with the same numbers (tests/unit/test_dashboards.py checks they agree).
CPU_HIGH = 0.9
MEMORY_HIGH = 0.95
TEMPERATURE_HIGH = 70.0


def memory_used_ratio(s: Scope) -> str:
    """Memory in use over the total of each device component, 0..1.

    The total is hatang_device_memory_total_bytes, else used + free where a vendor MIB gives those two
    (Cisco's memory pools); a total of 0 gives no ratio. Devices whose memory the `host` profile reads from
    UCD-SNMP-MIB (net-snmp) are left out: their hrStorageRam "used" counts the page cache, so it always
    looks full; HatangHostMemoryLow and the server board use MemAvailable for them.
    """
    used = s.sel("hatang_device_memory_used_bytes")
    total = s.sel("hatang_device_memory_total_bytes")
    free = s.sel("hatang_device_memory_free_bytes")
    return (f"({used} / (({total} or ({used} + {free})) > 0) "
            f"unless on(agent, device) {s.sel('hatang_host_memory_total_bytes')})")


def device_cpu(s: Scope) -> str:
    """CPU utilisation per component of the devices the `host` profile does not cover: a server's
    components are single cores (hrProcessorLoad), and HatangHostCpuHigh and the server board judge their
    average."""
    return (f"({s.sel('hatang_device_cpu_utilization_ratio')} unless on(agent, device) "
            f"{s.sel('hatang_host_cpu_load_ratio')})")


def device_answering(s: Scope) -> str:
    """`and` this to keep only devices whose newest poll answered (the alerts do the same)."""
    return f"and on(agent, device) ({s.sel('hatang_device_up')} == 1)"


# Window for rates of the agents' own counters: they arrive every self_metrics_interval (default 60 s)
# with the agent's timestamps, so $__rate_interval (4 scrape intervals) may hold only one of them.
SELF_WINDOW = "5m"
LEGEND_IF = "{{device}} {{if_name}} {{if_alias}}"
AVG, MAX = 'stat="avg"', 'stat="max"'
LINK_TRAPS = 'trap=~"linkDown|linkUp"'


# --- thresholds -----------------------------------------------------------------------------------------


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


GREEN = thresholds((None, "green"))
UTIL_STEPS = thresholds((None, "green"), (0.7, "orange"), (0.9, "red"))
LOSS_STEPS = thresholds((None, "green"), (0.05, "orange"), (0.2, "red"))
RTT_STEPS = thresholds((None, "green"), (0.1, "orange"), (0.3, "red"))
CPU_STEPS = thresholds((None, "green"), (0.7, "orange"), (CPU_HIGH, "red"))
MEMORY_STEPS = thresholds((None, "green"), (0.8, "orange"), (MEMORY_HIGH, "red"))
TEMPERATURE_STEPS = thresholds((None, "green"), (TEMPERATURE_HIGH - 10, "orange"), (TEMPERATURE_HIGH, "red"))


# --- value mappings of the state metrics ----------------------------------------------------------------


def value_mappings(mapping: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    return [{
        "type": "value",
        "options": {k: {"text": text, "color": color, "index": i}
                    for i, (k, (text, color)) in enumerate(mapping.items())},
    }]


OPER_STATUS = {
    "1": ("Hoạt động", "green"), "2": ("Ngừng", "red"), "3": ("Đang kiểm tra", "blue"),
    "4": ("Không xác định", "purple"), "5": ("Chờ (dormant)", "yellow"),
    "6": ("Không có (notPresent)", "#808080"),
    "7": ("Lớp dưới ngừng (lowerLayerDown)", "orange"),
}
ADMIN_STATUS = {"1": ("Bật (up)", "green"), "2": ("Tắt (down)", "#808080"), "3": ("Đang kiểm tra", "blue")}
AGENT_STATE = {"1": ("Kết nối", "green"), "0": ("Mất kết nối", "red"), "-1": ("Chưa thấy agent", "#808080")}
DEVICE_STATE = {"1": ("Trả lời", "green"), "0": ("Không trả lời", "red")}
PROBE_STATE = {"1": ("Thông", "green"), "0": ("Mất kết nối", "red")}
BATTERY_STATUS = {"1": ("Không rõ", "#808080"), "2": ("Bình thường", "green"), "3": ("Ắc quy yếu", "orange"),
                  "4": ("Ắc quy cạn", "red")}
OUTPUT_SOURCE = {"1": ("Khác", "#808080"), "2": ("Không có nguồn ra", "red"), "3": ("Điện lưới", "green"),
                 "4": ("Bypass", "orange"), "5": ("Ắc quy", "red"), "6": ("Tăng áp (booster)", "yellow"),
                 "7": ("Giảm áp (reducer)", "yellow")}
CONNECTED = {"1": ("Kết nối", "green"), "0": ("Mất kết nối", "red")}
PART_OK = {"1": ("Bình thường", "green"), "0": ("Hỏng", "red")}
