"""Board 5, Máy chủ trung tâm dữ liệu (hatang-may-chu): servers polled with the `host` profile.

A table of the servers (SNMP state, CPU, memory, fullest disk, load, uptime), then CPU by server and
by mode, load average, processes and users, memory, and disk use per mount (HOST-RESOURCES-MIB and
UCD-SNMP-MIB metrics).
"""

from __future__ import annotations

from .model import (
    UID_SERVER,
    Board,
    all_links,
    bargauge_options,
    cell,
    column,
    merge_table,
    standard_variables,
    table_options,
    target,
    ts_custom,
    ts_options,
)
from .promql import DEVICE_STATE, UTIL_STEPS, chain, thresholds, value_mappings


def server_board() -> Board:
    s = chain("province", "district", "commune", "agent", "device")
    src = {**{v: "hatang_agent_up" for v in ("province", "district", "commune", "agent")},
           "device": "hatang_host_storage_size_bytes"}
    b = Board(UID_SERVER, "hatang — Máy chủ trung tâm dữ liệu",
              "Máy chủ (Linux, Windows, thiết bị dùng net-snmp) đọc qua HOST-RESOURCES-MIB và UCD-SNMP-MIB: "
              "CPU, bộ nhớ, ổ đĩa, tải, thời gian hoạt động. / Data-centre servers (profile host): CPU, "
              "memory, storage, load, uptime.",
              s, standard_variables(s, src), links=all_links(UID_SERVER))
    cpu = s.sel("hatang_host_cpu_load_ratio")
    total = s.sel("hatang_host_memory_total_bytes")
    avail = s.sel("hatang_host_memory_available_bytes")
    free = s.sel("hatang_host_memory_free_bytes")
    buffers = s.sel("hatang_host_memory_buffers_bytes")
    cached = s.sel("hatang_host_memory_cached_bytes")
    mem_used = (f"1 - max by (agent, device) ({avail} or ({free} + {buffers} + {cached})) / "
                f"max by (agent, device) ({total})")
    size = s.sel("hatang_host_storage_size_bytes", 'storage_type="fixedDisk"')
    used = s.sel("hatang_host_storage_used_bytes", 'storage_type="fixedDisk"')
    disk = f"{used} / ({size} > 0)"
    b.row("Tổng quan máy chủ")
    b.add("table", "Máy chủ",
          "Mỗi dòng một máy chủ: trạng thái SNMP, CPU, bộ nhớ đã dùng, ổ đĩa đầy nhất, tải 5 phút, thời gian "
          "hoạt động.\nOne row per server: SNMP state, CPU, memory used, fullest disk, 5-min load, uptime.",
          [target(f"max by (agent, device) ({s.sel('hatang_device_up')}) and on(agent, device) "
                  f"max by (agent, device) ({s.sel('hatang_host_storage_size_bytes')})", ref="A",
                  instant=True, table=True),
           target(f"avg by (agent, device) ({cpu})", ref="B", instant=True, table=True),
           target(mem_used, ref="C", instant=True, table=True),
           target(f"max by (agent, device) ({disk})", ref="D", instant=True, table=True),
           target(f"max by (agent, device) ({s.sel('hatang_host_load5')})", ref="E", instant=True,
                  table=True),
           target(f"max by (agent, device) (time() - {s.sel('hatang_device_boot_time_seconds')})", ref="F",
                  instant=True, table=True)],
          w=24, h=7, transformations=merge_table(
              {"agent": "Điểm (agent)", "device": "Máy chủ", "Value #A": "Trạng thái", "Value #B": "CPU",
               "Value #C": "Bộ nhớ đã dùng", "Value #D": "Ổ đĩa đầy nhất", "Value #E": "Tải 5 phút",
               "Value #F": "Thời gian hoạt động"}),
          overrides=[
              column("Trạng thái", ("mappings", value_mappings(DEVICE_STATE)), cell("color-background"),
                     ("thresholds", thresholds((None, "red"), (1, "green")))),
              column("CPU", ("unit", "percentunit"), cell("gauge"), ("min", 0), ("max", 1),
                     ("thresholds", UTIL_STEPS)),
              column("Bộ nhớ đã dùng", ("unit", "percentunit"), cell("gauge"), ("min", 0), ("max", 1),
                     ("thresholds", UTIL_STEPS)),
              column("Ổ đĩa đầy nhất", ("unit", "percentunit"), cell("gauge"), ("min", 0), ("max", 1),
                     ("thresholds", thresholds((None, "green"), (0.8, "orange"), (0.9, "red")))),
              column("Tải 5 phút", ("decimals", 2)),
              column("Thời gian hoạt động", ("unit", "dtdurations")),
          ], options=table_options("CPU", desc=True))

    b.row("CPU và tải")
    b.add("timeseries", "CPU (%)",
          "Mức bận CPU trung bình các nhân (hrProcessorLoad), từng máy chủ; vạch 70 % và 90 %.\n"
          "Average CPU busy share over cores (hrProcessorLoad), per server.",
          [target(f"avg by (agent, device) ({cpu})", "{{device}}")], w=12, h=8, unit="percentunit",
          minimum=0, maximum=1, steps=UTIL_STEPS, custom=ts_custom(fill=0, thresholds_style="dashed"),
          options=ts_options())
    ticks = s.sel("hatang_host_cpu_ticks_total")
    b.add("timeseries", "CPU theo chế độ (%)",
          "Phân bố thời gian CPU theo chế độ (user, system, wait, ...) từ bộ đếm ssCpuRaw* của net-snmp; "
          "wait cao là chờ ổ đĩa. Không có với Windows.\nCPU time by mode from net-snmp's ssCpuRaw* "
          "counters; high wait means waiting on disks. Not on Windows.",
          [target(f"sum by (agent, device, mode) (rate({ticks}[$__rate_interval])) / on(agent, device) "
                  f"group_left() sum by (agent, device) (rate({ticks}[$__rate_interval]))",
                  "{{device}} {{mode}}")], w=12, h=8, unit="percentunit", minimum=0,
          custom=ts_custom(fill=60, stack=True), options=ts_options(("mean", "max")))
    b.add("timeseries", "Tải hệ thống (load average)",
          "Tải trung bình 1, 5, 15 phút (laLoad). So với số nhân CPU: tải lớn hơn số nhân kéo dài là quá "
          "tải.\n"
          "Load average 1/5/15 min; sustained load above the core count means overload.",
          [target(s.sel("hatang_host_load1"), "{{device}} 1 phút", "A"),
           target(s.sel("hatang_host_load5"), "{{device}} 5 phút", "B"),
           target(s.sel("hatang_host_load15"), "{{device}} 15 phút", "C"),
           target(f"count by (agent, device) ({cpu})", "{{device}} số nhân", "D")],
          w=12, h=8, decimals=2, custom=ts_custom(fill=0), options=ts_options())
    b.add("timeseries", "Tiến trình và người dùng",
          "Số tiến trình (hrSystemProcesses) và phiên người dùng (hrSystemNumUsers).\nProcesses and user "
          "sessions.",
          [target(s.sel("hatang_host_processes"), "{{device}} tiến trình", "A"),
           target(s.sel("hatang_host_users"), "{{device}} người dùng", "B")],
          w=12, h=8, decimals=0, custom=ts_custom(fill=0), options=ts_options(("lastNotNull", "max")))

    b.row("Bộ nhớ")
    b.add("timeseries", "Bộ nhớ đã dùng (%)",
          "Bộ nhớ đã dùng = 1 − khả dụng / tổng (MemAvailable; với net-snmp cũ: free + buffers + cached).\n"
          "Memory used = 1 − available / total.",
          [target(mem_used, "{{device}}")], w=12, h=8, unit="percentunit", minimum=0, maximum=1,
          steps=UTIL_STEPS, custom=ts_custom(fill=0, thresholds_style="dashed"), options=ts_options())
    b.add("timeseries", "Bộ nhớ (byte)",
          "Tổng, khả dụng, bộ đệm và cache của bộ nhớ; swap đã dùng.\nMemory total, available, buffers, "
          "cache; swap used.",
          [target(total, "{{device}} tổng", "A"),
           target(f"{avail} or ({free} + {buffers} + {cached})", "{{device}} khả dụng", "B"),
           target(cached, "{{device}} cache", "C"),
           target(buffers, "{{device}} buffers", "D"),
           target(f"{s.sel('hatang_host_swap_total_bytes')} - {s.sel('hatang_host_swap_free_bytes')}",
                  "{{device}} swap đã dùng", "E")],
          w=12, h=8, unit="bytes", custom=ts_custom(fill=0), options=ts_options(("lastNotNull", "max")))

    b.row("Ổ đĩa")
    b.add("bargauge", "Ổ đĩa đã dùng theo phân vùng",
          "Phần trăm đã dùng của từng phân vùng (hrStorage, loại fixedDisk); cam từ 80 %, đỏ từ 90 %.\n"
          "Used share of each fixed-disk mount.",
          [target(disk, "{{device}} {{mount}}", instant=True)], w=12, h=10, unit="percentunit", minimum=0,
          maximum=1, steps=thresholds((None, "green"), (0.8, "orange"), (0.9, "red")),
          options=bargauge_options())
    b.add("timeseries", "Dung lượng trống theo phân vùng",
          "Dung lượng còn trống của từng phân vùng theo thời gian: đường đi xuống đều là ổ sắp đầy.\n"
          "Free space per mount over time: a steady decline means a disk filling up.",
          [target(f"{size} - {used}", "{{device}} {{mount}}")], w=12, h=10, unit="bytes", minimum=0,
          custom=ts_custom(fill=0), options=ts_options(("lastNotNull", "min")))
    return b
