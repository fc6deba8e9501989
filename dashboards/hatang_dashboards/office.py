"""Board 2, Điểm (hatang-diem): one office, chosen with the single-valued `agent` variable.

The agent's state and last message, its devices (SNMP state, uptime, poll duration and errors, the
topology, their hardware health: `health.health_row`), the traffic, utilisation, errors and status of
its interfaces (the `top` busiest), its UPSes and the SNMP traps it received.
"""

from __future__ import annotations

from .health import health_row
from .model import (
    NEGATIVE_Y_B,
    UID_OFFICE,
    UID_PORT,
    Board,
    all_links,
    cell,
    column,
    data_link,
    merge_table,
    standard_variables,
    stat_options,
    table_options,
    target,
    timeline_options,
    top_variable,
    ts_custom,
    ts_options,
)
from .promql import (
    BATTERY_STATUS,
    CONNECTED,
    DEVICE_STATE,
    GREEN,
    LEGEND_IF,
    OPER_STATUS,
    OUTPUT_SOURCE,
    UTIL_STEPS,
    Scope,
    chain,
    critical,
    thresholds,
    traffic_bps,
    utilisation,
    value_mappings,
)


def topology_panel(b: Board, s: Scope) -> None:
    """The office's devices and the links between them (hatang_link_info, docs/topology.md) as a node
    graph: label_join (of one label: a copy) and label_replace give the frames the field names the panel
    reads (nodes: id, title, color; edges: id, source, target, mainstat, detail__*). Links to another
    office are left out."""
    nodes = (f'label_join(label_join(max by (agent, device) ({s.sel("hatang_device_up")}), "id", "", '
             '"device"), "title", "", "device")')
    link_info = s.sel("hatang_link_info", 'remote_agent=~"$agent"')
    links = f"max by (agent, device, if_name, remote_device, remote_if_name, confirmed) ({link_info})"
    for text, flag in (("hai đầu cùng thấy", "true"), ("một đầu thấy", "false")):
        links = f'label_replace({links}, "mainstat", "{text}", "confirmed", "{flag}")'
    links = f'label_join({links}, "id", " ", "device", "if_name", "remote_device", "remote_if_name")'
    edges = f'label_join(label_join({links}, "source", "", "device"), "target", "", "remote_device")'
    b.add("nodeGraph", "Sơ đồ kết nối",
          "Các thiết bị của điểm (xanh: trả lời SNMP, đỏ: không) và kết nối giữa chúng do LLDP/CDP của thiết "
          "bị báo (hatang_link_info, profile neighbors). \"hai đầu cùng thấy\": cả hai thiết bị đều báo kết "
          "nối; \"một đầu thấy\": chỉ một đầu báo. Di chuột lên đường nối để xem cổng hai đầu.\n"
          "The office's devices (green: answering SNMP, red: not) and the links between them from their "
          "LLDP/CDP neighbour tables; an edge says whether both ends or one end report it.",
          [target(nodes, ref="A", instant=True, table=True),
           target(edges, ref="B", instant=True, table=True)],
          w=24, h=12, transformations=[{"id": "organize", "options": {
              "excludeByName": {"Time": True},
              "renameByName": {"Value #A": "color", "if_name": "detail__Cổng", "device": "detail__Thiết bị",
                               "remote_if_name": "detail__Cổng đầu kia", "remote_device": "detail__Đầu kia"},
          }}],
          overrides=[column("color", ("color", {"mode": "thresholds"}),
                            ("thresholds", thresholds((None, "red"), (1, "green"))))],
          options={"nodes": {}, "edges": {}})


def office_board() -> Board:
    s = chain("province", "district", "commune", "agent", "device")
    src = {v: "hatang_device_up" for v in s.variables}
    b = Board(UID_OFFICE, "hatang — Điểm",
              "Một điểm (xã, phường, sở, ngành): thiết bị và tình trạng phần cứng của chúng (CPU, bộ nhớ, "
              "nhiệt độ, quạt, nguồn), lưu lượng và lỗi cổng, UPS và trap gần đây. Chọn điểm ở biến Điểm "
              "(agent). / One office: its devices and their hardware health, interface traffic and errors, "
              "UPS, recent traps.",
              s, [*standard_variables(s, src, single=("agent",)), top_variable()],
              links=all_links(UID_OFFICE))
    agent_up = s.sel("hatang_agent_up")
    b.row("Tình trạng")
    b.add("stat", "Agent của điểm",
          "Agent của điểm có đang kết nối về Trung tâm không (hatang_agent_up).\nIs the office's agent "
          "online?",
          [target(f"max({agent_up})", instant=True)], w=4, h=5, mappings=value_mappings(CONNECTED),
          steps=thresholds((None, "red"), (1, "green")), options=stat_options(text="value"))
    b.add("stat", "Lần cuối nhận tin",
          "Thời gian từ lần cuối Trung tâm nhận tin của agent. Vàng sau 5 phút, đỏ sau 15 phút.\n"
          "Time since the last message from the agent.",
          [target(f"time() - max({s.sel('hatang_agent_last_seen_timestamp_seconds')})", instant=True)],
          w=4, h=5, unit="s", steps=thresholds((None, "green"), (300, "orange"), (900, "red")),
          options=stat_options())
    b.add("stat", "Thiết bị trả lời",
          "Số thiết bị trả lời SNMP / tổng số thiết bị của điểm.\nDevices answering SNMP.",
          [target(f"sum({s.sel('hatang_device_up')})", instant=True)], w=4, h=5, decimals=0,
          steps=GREEN, options=stat_options())
    b.add("stat", "Thiết bị không trả lời",
          "Số thiết bị không trả lời SNMP hoặc lâu không có số liệu.\nDevices not answering or stale.",
          [target(f"count({s.sel('hatang_device_up')} == 0) or vector(0)", instant=True)], w=4, h=5,
          decimals=0, steps=thresholds((None, "green"), (1, "red")), options=stat_options())
    b.add("stat", "Cổng quan trọng ngừng",
          "Số cổng quan trọng (uplink/WAN, hatang_interface_critical) không ở trạng thái hoạt động.\n"
          "Critical (uplink/WAN) interfaces not operationally up.",
          [target(f"count(({s.sel('hatang_interface_oper_status')} != 1) {critical(s)}) or vector(0)",
                  instant=True)], w=4, h=5, decimals=0, steps=thresholds((None, "green"), (1, "red")),
          options=stat_options())
    b.add("stat", "Trap trong khoảng thời gian",
          "Số trap SNMP nhận được trong khoảng thời gian đang xem.\nSNMP traps received in the time range.",
          [target(f"sum(increase({s.sel('hatang_trap_received_total')}[$__range])) or vector(0)",
                  instant=True)], w=4, h=5, decimals=0, steps=thresholds((None, "green"), (1, "orange")),
          options=stat_options())

    b.row("Thiết bị")
    dev_up = s.sel("hatang_device_up")
    b.add("table", "Thiết bị của điểm",
          "Mỗi dòng một thiết bị: trạng thái SNMP, thời gian hoạt động, thời gian thăm dò, số lỗi trong lần "
          "thăm dò gần nhất. Bấm tên thiết bị để xem các cổng.\nOne row per device: SNMP state, uptime, poll "
          "duration, problems in the newest poll. Click a device to open its interfaces.",
          [target(f"max by (agent, device) ({dev_up})", ref="A", instant=True, table=True),
           target(f"max by (agent, device) (time() - {s.sel('hatang_device_boot_time_seconds')})", ref="B",
                  instant=True, table=True),
           target(f"max by (agent, device) ({s.sel('hatang_device_poll_duration_seconds')})", ref="C",
                  instant=True, table=True),
           target(f"max by (agent, device) ({s.sel('hatang_device_poll_errors')})", ref="D", instant=True,
                  table=True),
           target(f"max by (agent, device, sys_name, sys_descr) ({s.sel('hatang_device_info')})", ref="E",
                  instant=True, table=True)],
          w=24, h=8, transformations=merge_table(
              {"device": "Thiết bị", "Value #A": "Trạng thái", "Value #B": "Thời gian hoạt động",
               "Value #C": "Thời gian thăm dò", "Value #D": "Lỗi lần thăm dò", "sys_name": "sysName",
               "sys_descr": "Mô tả (sysDescr)"}, hide=("agent", "Value #E")),
          overrides=[
              column("Trạng thái", ("mappings", value_mappings(DEVICE_STATE)), cell("color-background"),
                     ("thresholds", thresholds((None, "red"), (1, "green")))),
              column("Thời gian hoạt động", ("unit", "dtdurations")),
              column("Thời gian thăm dò", ("unit", "s"), ("decimals", 2)),
              column("Lỗi lần thăm dò", cell("color-text"),
                     ("thresholds", thresholds((None, "green"), (1, "red")))),
              column("Thiết bị", ("links", [data_link("Cổng của ${__value.raw}", UID_PORT, {
                  "agent": "${agent}", "device": "${__value.raw}"})])),
          ], options=table_options("Trạng thái"))
    topology_panel(b, s)
    health_row(b, s)

    b.row("Lưu lượng cổng")
    top = "$top"
    b.add("timeseries", "Lưu lượng vào/ra (bit/s), các cổng bận nhất",
          "Lưu lượng $top cổng bận nhất, bit/giây: trên trục là chiều vào, dưới trục là chiều ra. Mỗi giá "
          "trị "
          "bị chặn ở tốc độ cổng, nên khi bộ đếm bị đặt lại (thiết bị khởi động lại) không có đỉnh giả.\n"
          "Traffic of the busiest interfaces in bit/s (in above, out below), each rate clamped to the "
          "interface speed so counter resets never draw spikes.",
          [target(f"topk({top}, {traffic_bps(s, 'in')})", LEGEND_IF + " vào", "A"),
           target(f"topk({top}, {traffic_bps(s, 'out')})", LEGEND_IF + " ra", "B")],
          w=24, h=10, unit="bps", custom=ts_custom(), overrides=NEGATIVE_Y_B, options=ts_options(),
          links=[data_link("Xem cổng ${__field.labels.if_name}", UID_PORT, {
              "agent": "${__field.labels.agent}", "device": "${__field.labels.device}",
              "if_name": "${__field.labels.if_name}"})])
    b.add("timeseries", "Mức sử dụng cổng quan trọng (%)",
          "Mức sử dụng so với tốc độ cổng của các cổng quan trọng (uplink/WAN); vạch 70 % và 90 %.\n"
          "Utilisation of the critical (uplink/WAN) interfaces; lines at 70 % and 90 %.",
          [target(f"{utilisation(s, 'in')} {critical(s)}", LEGEND_IF + " vào", "A"),
           target(f"{utilisation(s, 'out')} {critical(s)}", LEGEND_IF + " ra", "B")],
          w=12, h=9, unit="percentunit", minimum=0, maximum=1, steps=UTIL_STEPS,
          custom=ts_custom(thresholds_style="dashed"), options=ts_options())
    b.add("timeseries", "Lỗi và gói bị huỷ (gói/s)",
          "Gói lỗi (ifInErrors/ifOutErrors) và gói bị huỷ (ifInDiscards/ifOutDiscards) mỗi giây, 10 cổng "
          "nhiều nhất. Lỗi thường do cáp, đầu nối, lệch duplex; huỷ gói thường do nghẽn.\n"
          "Errored and discarded packets per second, top 10 interfaces: errors point at cabling or duplex, "
          "discards at congestion.",
          [target(f"topk(10, rate({s.sel('hatang_interface_in_errors_total')}[$__rate_interval]))",
                  LEGEND_IF + " lỗi vào", "A"),
           target(f"topk(10, rate({s.sel('hatang_interface_out_errors_total')}[$__rate_interval]))",
                  LEGEND_IF + " lỗi ra", "B"),
           target(f"topk(10, rate({s.sel('hatang_interface_in_discards_total')}[$__rate_interval]))",
                  LEGEND_IF + " huỷ vào", "C"),
           target(f"topk(10, rate({s.sel('hatang_interface_out_discards_total')}[$__rate_interval]))",
                  LEGEND_IF + " huỷ ra", "D")],
          w=12, h=9, unit="pps", custom=ts_custom(), options=ts_options(("mean", "max")))
    b.add("state-timeline", "Trạng thái cổng",
          "Trạng thái hoạt động của từng cổng (ifOperStatus) theo thời gian: xanh hoạt động, đỏ ngừng, cam "
          "lớp "
          "dưới ngừng. Cổng bị tắt bằng cấu hình cũng hiện là Ngừng.\nOperational status of every interface "
          "over time.",
          [target(s.sel("hatang_interface_oper_status"), LEGEND_IF)], w=24, h=14,
          mappings=value_mappings(OPER_STATUS), steps=thresholds((None, "text")),
          custom={"lineWidth": 0, "fillOpacity": 80}, options=timeline_options())

    b.row("UPS")
    ups = {m: s.sel(f"hatang_ups_{m}") for m in ("battery_status", "output_source", "battery_runtime_seconds",
                                                   "battery_charge_ratio", "output_load_ratio",
                                                   "time_on_battery_seconds", "input_voltage_volts",
                                                   "alarms")}
    b.add("table", "UPS của điểm",
          "Mỗi UPS: nguồn cấp ra (điện lưới/ắc quy), trạng thái ắc quy, thời gian còn chạy được, dung lượng "
          "ắc quy, tải, số cảnh báo của UPS.\nPer UPS: output source, battery status, runtime left, charge, "
          "load, active alarms.",
          [target(f"max by (agent, device) ({ups['output_source']})", ref="A", instant=True, table=True),
           target(f"max by (agent, device) ({ups['battery_status']})", ref="B", instant=True, table=True),
           target(f"max by (agent, device) ({ups['battery_runtime_seconds']})", ref="C",
                  instant=True, table=True),
           target(f"max by (agent, device) ({ups['battery_charge_ratio']})", ref="D",
                  instant=True, table=True),
           target(f"max by (agent, device) ({ups['output_load_ratio']})", ref="E", instant=True, table=True),
           target(f"max by (agent, device) ({ups['alarms']})", ref="F", instant=True, table=True)],
          w=12, h=8, transformations=merge_table(
              {"device": "UPS", "Value #A": "Nguồn ra", "Value #B": "Ắc quy", "Value #C": "Còn chạy được",
               "Value #D": "Dung lượng", "Value #E": "Tải", "Value #F": "Cảnh báo UPS"}, hide=("agent",)),
          overrides=[
              column("Nguồn ra", ("mappings", value_mappings(OUTPUT_SOURCE)), cell("color-background")),
              column("Ắc quy", ("mappings", value_mappings(BATTERY_STATUS)), cell("color-background")),
              column("Còn chạy được", ("unit", "dtdurations"), cell("color-text"),
                     ("thresholds", thresholds((None, "red"), (600, "orange"), (1800, "green")))),
              column("Dung lượng", ("unit", "percentunit"), cell("color-text"),
                     ("thresholds", thresholds((None, "red"), (0.5, "orange"), (0.8, "green")))),
              column("Tải", ("unit", "percentunit"), cell("color-text"), ("thresholds", UTIL_STEPS)),
              column("Cảnh báo UPS", cell("color-text"),
                     ("thresholds", thresholds((None, "green"), (1, "red")))),
          ], options=table_options())
    b.add("timeseries", "Thời gian còn chạy bằng ắc quy",
          "Thời gian UPS ước tính còn chạy được bằng ắc quy (upsEstimatedMinutesRemaining); đỏ dưới 10 "
          "phút.\n"
          "Estimated battery runtime; red below 10 minutes.",
          [target(ups["battery_runtime_seconds"], "{{device}}")], w=12, h=8, unit="s", minimum=0,
          steps=thresholds((None, "red"), (600, "green")), custom=ts_custom(thresholds_style="dashed"),
          options=ts_options(("min", "lastNotNull")))
    b.add("state-timeline", "Nguồn cấp của UPS",
          "Nguồn cấp ra của UPS theo thời gian: điện lưới (xanh) hay ắc quy (đỏ, mất điện lưới).\n"
          "UPS output source over time: mains (green) or battery (red: mains failure).",
          [target(ups["output_source"], "{{device}}")], w=24, h=5, mappings=value_mappings(OUTPUT_SOURCE),
          steps=thresholds((None, "text")), custom={"lineWidth": 0, "fillOpacity": 80},
          options=timeline_options())

    b.row("Trap gần đây")
    trap_last = s.sel("hatang_trap_last_timestamp_seconds")
    b.add("table", "Trap nhận được",
          "Trap SNMP theo thiết bị và loại (linkDown, linkUp, coldStart...): số trap trong khoảng thời gian "
          "đang xem và thời điểm nhận trap gần nhất; mới nhất ở trên. Thiết bị \"unknown\" là nguồn gửi chưa "
          "có trong cấu hình.\nSNMP traps by device and trap: count in the time range and when the last one "
          "arrived, newest first.",
          [target(f"max by (agent, device, trap) ({trap_last}) * 1000", ref="A", instant=True, table=True),
           target(f"sum by (agent, device, trap) (increase({s.sel('hatang_trap_received_total')}[$__range]))",
                  ref="B", instant=True, table=True)],
          w=12, h=9, transformations=merge_table(
              {"device": "Thiết bị", "trap": "Trap", "Value #A": "Lần cuối", "Value #B": "Số trap"},
              hide=("agent",)),
          overrides=[column("Lần cuối", ("unit", "dateTimeAsLocal")), column("Số trap", ("decimals", 0))],
          options=table_options("Lần cuối", desc=True))
    b.add("timeseries", "Trap theo thời gian",
          "Số trap nhận được mỗi khoảng, theo thiết bị và loại trap.\nTraps received per interval, by device "
          "and trap.",
          [target(f"sum by (device, trap) (increase({s.sel('hatang_trap_received_total')}"
                  "[$__rate_interval]))", "{{device}} {{trap}}")],
          w=12, h=9, decimals=0, custom=ts_custom(fill=80, bars=True, stack=True),
          options=ts_options(("sum",)))
    return b
