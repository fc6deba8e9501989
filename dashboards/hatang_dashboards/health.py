"""Device health panels, shared by the boards: the normalised families every vendor profile publishes
(docs/metrics.md: hatang_device_cpu_utilization_ratio, _memory_used_bytes / _memory_total_bytes (or
_memory_free_bytes), _temperature_celsius, _fan_ok, _power_supply_ok; label `component` = the vendor's
name of the part), so one panel serves every brand.

`health_row` is the "Tình trạng thiết bị" row of the office and interface boards (CPU, memory and
temperature per component, memory used/total, failed fans and power supplies); `attention_table` is the
province board's short list of devices with a failed part or a high reading, with the alert thresholds.
"""

from __future__ import annotations

from .model import (
    UID_OFFICE,
    Board,
    cell,
    column,
    data_link,
    merge_table,
    table_options,
    target,
    ts_custom,
    ts_options,
)
from .promql import (
    CPU_HIGH,
    CPU_STEPS,
    MEMORY_HIGH,
    MEMORY_STEPS,
    PART_OK,
    TEMPERATURE_HIGH,
    TEMPERATURE_STEPS,
    Scope,
    device_answering,
    device_cpu,
    memory_used_ratio,
    thresholds,
    value_mappings,
)

# A part is listed with the vendor's name of it; Huawei names fans and supplies by slot.number.
BY_PART = "agent, device, component"


def percent(ratio: float) -> str:
    return f"{ratio * 100:g} %"


def failed_parts(s: Scope) -> str:
    """One series per failed fan or power supply (value 0), with a `part` label saying which kind."""
    fans = f"max by ({BY_PART}) ({s.sel('hatang_device_fan_ok')} == 0)"
    supplies = f"max by ({BY_PART}) ({s.sel('hatang_device_power_supply_ok')} == 0)"
    return (f'label_replace({fans}, "part", "Quạt", "", "") or '
            f'label_replace({supplies}, "part", "Nguồn", "", "")')


def memory_total(s: Scope) -> str:
    """The total, or used + free where the vendor MIB gives no total (as memory_used_ratio)."""
    used, free = s.sel("hatang_device_memory_used_bytes"), s.sel("hatang_device_memory_free_bytes")
    return f"({s.sel('hatang_device_memory_total_bytes')} or ({used} + {free}))"


def health_row(b: Board, s: Scope, legend: str = "{{device}} {{component}}") -> None:
    """CPU, memory and temperature of every component over time, memory used/total now, failed parts."""
    b.row("Tình trạng thiết bị")
    cpu_pct, mem_pct, temp = percent(CPU_HIGH), percent(MEMORY_HIGH), f"{TEMPERATURE_HIGH:g} °C"
    b.add("timeseries", "CPU theo thành phần (%)",
          f"Mức bận CPU của từng thành phần (bo mạch, CPU, card điều khiển) theo MIB của hãng "
          f"(hatang_device_cpu_utilization_ratio); vạch đỏ {cpu_pct}: trên mức đó 15 phút có cảnh báo "
          "HatangDeviceCpuHigh. Máy chủ có một đường cho mỗi nhân.\n"
          "CPU utilisation of every component from the vendor's MIB; red line at the HatangDeviceCpuHigh "
          "threshold. Servers show one line per core.",
          [target(s.sel("hatang_device_cpu_utilization_ratio"), legend)],
          w=8, h=8, unit="percentunit", minimum=0, maximum=1, steps=CPU_STEPS,
          custom=ts_custom(fill=0, thresholds_style="dashed"), options=ts_options())
    b.add("timeseries", "Bộ nhớ đã dùng (%)",
          f"Bộ nhớ đã dùng so với tổng bộ nhớ của từng thành phần (hatang_device_memory_used_bytes / "
          f"hatang_device_memory_total_bytes; Cisco: đã dùng / (đã dùng + còn trống)); vạch đỏ {mem_pct} "
          "(cảnh báo HatangDeviceMemoryHigh). Máy chủ Linux không có ở đây (bộ nhớ đệm làm số liệu luôn gần "
          "đầy): xem bảng Máy chủ.\n"
          "Memory used over total per component; red line at the HatangDeviceMemoryHigh threshold. Net-SNMP "
          "servers are left out (their page cache looks used): see the server board.",
          [target(memory_used_ratio(s), legend)],
          w=8, h=8, unit="percentunit", minimum=0, maximum=1, steps=MEMORY_STEPS,
          custom=ts_custom(fill=0, thresholds_style="dashed"), options=ts_options())
    b.add("timeseries", "Nhiệt độ (°C)",
          f"Nhiệt độ các cảm biến của thiết bị (hatang_device_temperature_celsius, tên cảm biến theo hãng); "
          f"vàng từ {TEMPERATURE_HIGH - 10:g} °C, đỏ từ {temp}: trên mức đó 10 phút có cảnh báo "
          "HatangDeviceTemperatureHigh.\n"
          "Temperature of every sensor of the devices; red line at the HatangDeviceTemperatureHigh "
          "threshold.",
          [target(s.sel("hatang_device_temperature_celsius"), legend)],
          w=8, h=8, unit="celsius", steps=TEMPERATURE_STEPS,
          custom=ts_custom(fill=0, thresholds_style="dashed"), options=ts_options())

    used = s.sel("hatang_device_memory_used_bytes")
    b.add("table", "Bộ nhớ theo thành phần",
          "Bộ nhớ hiện tại của từng thành phần: đã dùng, tổng và tỉ lệ (vàng từ 80 %, đỏ từ "
          f"{mem_pct}).\nMemory of every component now: used, total and the share used.",
          [target(f"max by ({BY_PART}) ({used})", ref="A", instant=True, table=True),
           target(f"max by ({BY_PART}) ({memory_total(s)})", ref="B", instant=True, table=True),
           target(f"max by ({BY_PART}) ({memory_used_ratio(s)})", ref="C", instant=True, table=True)],
          w=12, h=8, transformations=merge_table(
              {"device": "Thiết bị", "component": "Thành phần", "Value #A": "Đã dùng", "Value #B": "Tổng",
               "Value #C": "Tỉ lệ đã dùng"}, hide=("agent",)),
          overrides=[
              column("Đã dùng", ("unit", "bytes")),
              column("Tổng", ("unit", "bytes")),
              column("Tỉ lệ đã dùng", ("unit", "percentunit"), cell("gauge"), ("min", 0), ("max", 1),
                     ("thresholds", MEMORY_STEPS)),
          ], options=table_options("Tỉ lệ đã dùng", desc=True))
    b.add("table", "Quạt và nguồn hỏng",
          "Quạt (hatang_device_fan_ok) và bộ nguồn (hatang_device_power_supply_ok) mà thiết bị báo hỏng "
          "ngay lúc này, tên theo hãng. Bảng trống là không có gì hỏng (quạt, nguồn không có trong MIB của "
          "thiết bị hoặc ở trạng thái không rõ thì không được tính). Hỏng 5 phút thì có cảnh báo "
          "HatangDeviceFanFailed / HatangDevicePowerSupplyFailed.\n"
          "Fans and power supplies the devices report failed now; empty when none is.",
          [target(failed_parts(s), instant=True, table=True)],
          w=12, h=8, transformations=[{"id": "organize", "options": {
              "excludeByName": {"Time": True, "agent": True},
              "indexByName": {"device": 0, "part": 1, "component": 2, "Value": 3},
              "renameByName": {"device": "Thiết bị", "part": "Loại", "component": "Thành phần",
                               "Value": "Trạng thái"}}}],
          overrides=[column("Trạng thái", ("mappings", value_mappings(PART_OK)), cell("color-background"),
                            ("thresholds", thresholds((None, "red"), (1, "green"))))],
          options=table_options("Thiết bị"))


def attention_table(b: Board, s: Scope) -> None:
    """Devices of the selected sites with a failed fan or power supply, or a CPU, memory or temperature
    above the alert thresholds now; devices that do not answer are left to the device-down figures."""
    up = device_answering(s)
    fans = f"count by (agent, device) ({s.sel('hatang_device_fan_ok')} == 0) {up}"
    supplies = f"count by (agent, device) ({s.sel('hatang_device_power_supply_ok')} == 0) {up}"
    cpu = f"max by (agent, device) ({device_cpu(s)}) > {CPU_HIGH:g} {up}"
    memory = f"max by (agent, device) ({memory_used_ratio(s)}) > {MEMORY_HIGH:g} {up}"
    temperature = s.sel("hatang_device_temperature_celsius")
    temp = f"max by (agent, device) ({temperature}) > {TEMPERATURE_HIGH:g} {up}"
    b.row("Sức khoẻ thiết bị")
    b.add("table", "Thiết bị cần chú ý",
          f"Thiết bị đang trả lời SNMP có quạt hoặc bộ nguồn hỏng, CPU trên {percent(CPU_HIGH)}, bộ nhớ "
          f"trên {percent(MEMORY_HIGH)} hoặc nhiệt độ trên {TEMPERATURE_HIGH:g} °C ngay lúc này (các ngưỡng "
          "của cảnh báo; CPU và bộ nhớ máy chủ xem ở bảng Máy chủ). Bảng trống là không thiết bị nào có vấn "
          "đề. Bấm mã agent để mở bảng Điểm.\n"
          "Answering devices with a failed fan or power supply, or CPU, memory or temperature above the "
          "alert thresholds now; empty when none. Click the agent to open its office.",
          [target(fans, ref="A", instant=True, table=True),
           target(supplies, ref="B", instant=True, table=True),
           target(cpu, ref="C", instant=True, table=True),
           target(memory, ref="D", instant=True, table=True),
           target(temp, ref="E", instant=True, table=True)],
          w=24, h=8, transformations=merge_table(
              {"agent": "Agent", "device": "Thiết bị", "Value #A": "Quạt hỏng", "Value #B": "Nguồn hỏng",
               "Value #C": "CPU cao nhất", "Value #D": "Bộ nhớ cao nhất", "Value #E": "Nhiệt độ cao nhất"}),
          overrides=[
              column("Quạt hỏng", ("decimals", 0), cell("color-background"),
                     ("thresholds", thresholds((None, "red")))),
              column("Nguồn hỏng", ("decimals", 0), cell("color-background"),
                     ("thresholds", thresholds((None, "red")))),
              column("CPU cao nhất", ("unit", "percentunit"), cell("color-text"), ("thresholds", CPU_STEPS)),
              column("Bộ nhớ cao nhất", ("unit", "percentunit"), cell("color-text"),
                     ("thresholds", MEMORY_STEPS)),
              column("Nhiệt độ cao nhất", ("unit", "celsius"), cell("color-text"),
                     ("thresholds", TEMPERATURE_STEPS)),
              column("Agent", ("links", [data_link("Mở bảng Điểm ${__value.raw}", UID_OFFICE,
                                                   {"agent": "${__value.raw}"})])),
          ], options=table_options("Agent"))
