"""Board 1, Toàn tỉnh (hatang-toan-tinh): the whole province at a glance.

Counts of offices online and offline, devices and link probes not answering, UPSes on battery and
firing alerts; the map of the offices and their table; availability over the dashboard's time range,
evaluated from the definitions `hatang report` uses (hatang/availability/definitions.py); the worst links
(loss, RTT, WAN utilisation); the devices needing attention (a failed fan or power supply, CPU, memory
or temperature above the alert thresholds); the firing Prometheus alerts, selected by `alerts_selector`.
"""

from __future__ import annotations

from hatang.availability.definitions import DEVICE, LINK, OFFICE, STEP_SECONDS, Subject

from .health import attention_table
from .model import (
    UID_LINK,
    UID_OFFICE,
    UID_PORT,
    UID_PROVINCE,
    Board,
    all_links,
    bargauge_options,
    cell,
    column,
    data_link,
    merge_table,
    standard_variables,
    stat_options,
    table_options,
    target,
    timeline_options,
)
from .promql import (
    AGENT_STATE,
    AVG,
    CONNECTED,
    LOSS_STEPS,
    RTT_STEPS,
    UTIL_STEPS,
    Scope,
    busier_utilisation,
    chain,
    critical,
    thresholds,
    value_mappings,
)


def province_board() -> Board:
    s = chain("province", "district", "commune", "agent")
    src = {v: "hatang_agent_up" for v in s.variables}
    b = Board(UID_PROVINCE, "hatang — Toàn tỉnh",
              "Tình trạng các điểm (xã, phường, sở, ngành) trong tỉnh: điểm mất kết nối, bản đồ, đường "
              "truyền kém nhất, thiết bị cần chú ý (phần cứng) và cảnh báo đang kích hoạt. / Province "
              "overview: offices up/down, map, worst WAN links, devices needing attention and firing alerts.",
              s, standard_variables(s, src), links=all_links(UID_PROVINCE))
    agent_up = s.sel("hatang_agent_up")
    b.row("Tình trạng các điểm")
    b.add("stat", "Điểm đang kết nối",
          "Số điểm có agent đang kết nối về Trung tâm (hatang_agent_up = 1).\n"
          "Offices whose agent is online.",
          [target(f"sum({agent_up}) or vector(0)", instant=True)], w=4, h=5, decimals=0,
          steps=thresholds((None, "red"), (1, "green")), options=stat_options())
    b.add("stat", "Điểm mất kết nối",
          "Số điểm mất kết nối: agent tắt, mất điện hoặc mất đường truyền (hatang_agent_up = 0).\n"
          "Offices offline: agent stopped, power or link down.",
          [target(f"count({agent_up} == 0) or vector(0)", instant=True)], w=4, h=5, decimals=0,
          steps=thresholds((None, "green"), (1, "red")), options=stat_options())
    b.add("stat", "Thiết bị không trả lời",
          "Số thiết bị không trả lời SNMP tại các điểm đang kết nối.\n"
          "Devices not answering SNMP at offices whose agent is online.",
          [target(f"count(({s.sel('hatang_device_up')} == 0) and on(agent) ({agent_up} == 1)) or vector(0)",
                  instant=True)], w=4, h=5, decimals=0,
          steps=thresholds((None, "green"), (1, "orange")), options=stat_options())
    b.add("stat", "Đường truyền mất kết nối",
          "Số đích đo kiểm (probe) không trả lời, tại các điểm đang kết nối.\n"
          "Link probes whose target does not answer, at offices whose agent is online.",
          [target(f"count(({s.sel('hatang_probe_up')} == 0) and on(agent) ({agent_up} == 1)) or vector(0)",
                  instant=True)], w=4, h=5, decimals=0,
          steps=thresholds((None, "green"), (1, "red")), options=stat_options())
    b.add("stat", "UPS đang chạy ắc quy",
          "Số UPS đang cấp điện bằng ắc quy (mất điện lưới tại điểm).\n"
          "UPSes on battery (mains failure at the office).",
          [target(f"count({s.sel('hatang_ups_on_battery')} == 1) or vector(0)", instant=True)], w=4, h=5,
          decimals=0, steps=thresholds((None, "green"), (1, "red")), options=stat_options())
    b.add("stat", "Số cảnh báo đang kích hoạt",
          "Số cảnh báo Prometheus đang kích hoạt (firing) trong phạm vi đã chọn, kể cả cảnh báo chung của "
          "Trung tâm.\nFiring Prometheus alerts in the selection, central alerts included.",
          [target(f"count({alerts_selector()}) or vector(0)", instant=True)], w=4, h=5, decimals=0,
          steps=thresholds((None, "green"), (1, "red")), options=stat_options())

    b.row("Bản đồ và danh sách điểm")
    site = s.sel("hatang_site_info")
    state = (f"max by (agent, site_name, role, latitude, longitude) ({site} * on(agent) group_left() "
             f"max by (agent) ({agent_up}) or ({site} - 2))")
    b.add("geomap", "Bản đồ các điểm",
          "Vị trí các điểm theo toạ độ trong danh mục (hatang_site_info), tô màu theo trạng thái agent: xanh "
          "kết nối, đỏ mất kết nối, xám chưa thấy agent.\nOffices at their inventory coordinates, coloured "
          "by "
          "the agent's state: green online, red offline, grey never seen.",
          [target(state, ref="A", instant=True, table=True)], w=14, h=14,
          mappings=value_mappings(AGENT_STATE),
          steps=thresholds((None, "#808080"), (0, "red"), (1, "green")),
          transformations=[{"id": "convertFieldType", "options": {"fields": {}, "conversions": [
              {"targetField": "latitude", "destinationType": "number"},
              {"targetField": "longitude", "destinationType": "number"}]}}],
          links=[data_link("Mở bảng Điểm ${__data.fields.agent}", UID_OFFICE,
                           {"agent": "${__data.fields.agent}"})],
          options={
              "view": {"id": "fit", "lat": 21.3, "lon": 105.5, "zoom": 9, "allLayers": True},
              "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True},
              "basemap": {"type": "default", "name": "Nền bản đồ", "config": {}},
              "layers": [{
                  "type": "markers", "name": "Điểm", "tooltip": True,
                  "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
                  "config": {"showLegend": True, "style": {
                      "size": {"fixed": 8, "min": 6, "max": 12},
                      "color": {"field": "Value"}, "opacity": 0.8,
                      "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                      "text": {"mode": "field", "field": "site_name", "fixed": ""},
                      "textConfig": {"fontSize": 11, "offsetY": -12, "textAlign": "center",
                                     "textBaseline": "middle"}}},
              }],
              "tooltip": {"mode": "details"},
          })
    last_seen = s.sel("hatang_agent_last_seen_timestamp_seconds")
    b.add("table", "Các điểm",
          "Mỗi dòng một điểm: trạng thái agent, thời gian từ lần cuối nhận tin, số thiết bị không trả lời. "
          "Bấm tên agent để mở bảng Điểm.\nOne row per office: agent state, time since its last message, "
          "devices not answering. Click the agent to open the office board.",
          [target(f"max by (agent, province, commune) ({agent_up})", ref="A", instant=True, table=True),
           target(f"max by (agent) (time() - {last_seen})", ref="B", instant=True, table=True),
           target(f"count by (agent) ({s.sel('hatang_device_up')} == 0) or "
                  f"max by (agent) ({agent_up}) * 0", ref="C", instant=True, table=True)],
          w=10, h=14, transformations=merge_table(
              {"agent": "Agent", "province": "Tỉnh/Thành phố", "commune": "Xã/Phường",
               "Value #A": "Trạng thái",
               "Value #B": "Lần cuối nhận tin", "Value #C": "Thiết bị không trả lời"}),
          overrides=[
              column("Trạng thái", ("mappings", value_mappings(CONNECTED)), cell("color-background"),
                     ("thresholds", thresholds((None, "red"), (1, "green")))),
              column("Lần cuối nhận tin", ("unit", "dtdurations"), cell("color-text"),
                     ("thresholds", thresholds((None, "green"), (300, "orange"), (900, "red")))),
              column("Thiết bị không trả lời", cell("color-text"),
                     ("thresholds", thresholds((None, "green"), (1, "red")))),
              column("Agent", ("links", [data_link("Mở bảng Điểm ${__value.raw}", UID_OFFICE,
                                                   {"agent": "${__value.raw}"})])),
          ], options=table_options("Trạng thái"))

    availability(b, s)

    b.row("Đường truyền kém nhất")
    b.add("bargauge", "Mất gói cao nhất",
          "Tỉ lệ mất gói của lần đo gần nhất tới mỗi đích (hatang_probe_loss_ratio), 10 đích tệ nhất.\n"
          "Packet loss of the latest probe run, worst 10 targets.",
          [target(f"topk(10, {s.sel('hatang_probe_loss_ratio')})", "{{agent}} → {{device}} ({{target}})",
                  instant=True)], w=8, h=9, unit="percentunit", minimum=0, maximum=1, steps=LOSS_STEPS,
          options=bargauge_options(),
          links=[data_link("Đường truyền", UID_LINK, {"agent": "${__field.labels.agent}"})])
    b.add("bargauge", "Độ trễ cao nhất",
          "Độ trễ trung bình (RTT) của lần đo gần nhất, 10 đích chậm nhất. Vàng từ 100 ms, đỏ từ 300 ms.\n"
          "Average round-trip time of the latest run, slowest 10 targets.",
          [target(f"topk(10, {s.sel('hatang_probe_rtt_seconds', AVG)})",
                  "{{agent}} → {{device}} ({{target}})", instant=True)],
          w=8, h=9, unit="s", minimum=0, steps=RTT_STEPS, options=bargauge_options(),
          links=[data_link("Đường truyền", UID_LINK, {"agent": "${__field.labels.agent}"})])
    b.add("bargauge", "Cổng WAN sử dụng cao nhất",
          "Mức sử dụng (so với tốc độ cổng) của các cổng quan trọng (hatang_interface_critical: uplink, WAN "
          "đường truyền chuyên dùng), chiều vào hoặc ra lớn hơn, 10 cổng cao nhất.\n"
          "Utilisation of critical (WAN/uplink) interfaces, the busier direction, top 10.",
          [target(f"topk(10, {busier_utilisation(s)} {critical(s)})",
                  "{{agent}} {{device}} {{if_name}} {{if_alias}}", instant=True)],
          w=8, h=9, unit="percentunit", minimum=0, maximum=1, steps=UTIL_STEPS, options=bargauge_options(),
          links=[data_link("Cổng", UID_PORT, {"agent": "${__field.labels.agent}",
                                              "device": "${__field.labels.device}",
                                              "if_name": "${__field.labels.if_name}"})])

    attention_table(b, s)

    b.row("Cảnh báo")
    b.add("table", "Cảnh báo đang kích hoạt",
          "Cảnh báo Prometheus đang kích hoạt (series ALERTS, alertstate=\"firing\"; quy tắc trong "
          "deploy/prometheus/rules/). Cảnh báo chung của Trung tâm (không gắn với điểm) luôn được hiện.\n"
          "Firing Prometheus alerts (the ALERTS series); central alerts without site labels always show.",
          [target(alerts_selector(), instant=True, table=True)], w=24, h=9,
          transformations=[{"id": "organize", "options": {
              "excludeByName": {"Time": True, "Value": True, "__name__": True, "alertstate": True},
              "indexByName": {"severity": 0, "alertname": 1, "agent": 2, "commune": 3, "province": 4,
                              "device": 5},
              "renameByName": {"severity": "Mức độ", "alertname": "Cảnh báo", "agent": "Agent",
                               "commune": "Xã/Phường", "province": "Tỉnh/Thành phố", "device": "Thiết bị",
                               "district": "Huyện (cũ)", "target": "Đích đo"}}}],
          overrides=[column("Mức độ", cell("color-background"), ("mappings", value_mappings({
              "critical": ("Nghiêm trọng", "red"), "warning": ("Cảnh báo", "orange"),
              "info": ("Thông tin", "blue"),
          })))], options=table_options("Mức độ"))
    return b


def up_minutes(subject: Subject, s: Scope, by: str) -> str:
    """Minutes up in the dashboard's range, per ``by``: the report's definition on its one-minute grid."""
    step = f"{STEP_SECONDS // 60}m"
    return f"sum by ({by}) (sum_over_time(({subject.over(s.sel(subject.source))})[$__range:{step}]))"


def known_series(subject: Subject, s: Scope, by: str) -> str:
    """How many series of the subject had data in the range, per ``by``."""
    step = f"{STEP_SECONDS // 60}m"
    return f"count by ({by}) (count_over_time(({subject.over(s.sel(subject.source))})[$__range:{step}]))"


def availability(b: Board, s: Scope) -> None:
    """Availability over the dashboard's time range, unknown (no data) counted as down, as `hatang
    report` counts it by default; maintenance windows are known only to the report (its file)."""
    minutes = f"($__range_s / {STEP_SECONDS})"
    b.row("Mức sẵn sàng")
    note = ("Tính như báo cáo tháng (hatang report): mỗi phút một trạng thái; phút không có số liệu tính là "
            "gián đoạn. Khung bảo trì chỉ được trừ trong báo cáo.")
    note_en = ("Computed as the monthly report (hatang report) does: one state per minute, minutes without "
               "data count as down; maintenance windows are left out in the report only.")
    b.add("table", "Mức sẵn sàng theo điểm",
          "Tỉ lệ thời gian hoạt động trong khoảng thời gian đang xem: kết nối của điểm về Trung tâm "
          "(hatang_agent_up), các thiết bị của điểm (hatang_device_poll_success, gồm cả số liệu gửi bù sau "
          f"khi mất đường truyền) và các đường truyền đo kiểm (hatang_probe_up). {note}\n"
          f"Share of the time range up: the office's connection, its devices, its probed links. {note_en}",
          [target(f"{up_minutes(OFFICE, s, 'agent')} / {minutes}", ref="A", instant=True, table=True),
           target(f"{up_minutes(DEVICE, s, 'agent')} / ({known_series(DEVICE, s, 'agent')} * {minutes})",
                  ref="B", instant=True, table=True),
           target(f"{up_minutes(LINK, s, 'agent')} / ({known_series(LINK, s, 'agent')} * {minutes})",
                  ref="C", instant=True, table=True)],
          w=12, h=10, transformations=merge_table(
              {"agent": "Agent", "Value #A": "Kết nối về Trung tâm", "Value #B": "Thiết bị",
               "Value #C": "Đường truyền"}),
          overrides=[column(name, ("unit", "percentunit"), ("decimals", 2), cell("color-text"),
                            ("thresholds", thresholds((None, "red"), (0.99, "orange"), (0.999, "green"))))
                     for name in ("Kết nối về Trung tâm", "Thiết bị", "Đường truyền")]
          + [column("Agent", ("links", [data_link("Mở bảng Điểm ${__value.raw}", UID_OFFICE,
                                                  {"agent": "${__value.raw}"})]))],
          options=table_options("Kết nối về Trung tâm"))
    b.add("state-timeline", "Kết nối các điểm theo phút",
          "Trạng thái kết nối của từng điểm về Trung tâm, mỗi phút một trạng thái, như báo cáo tháng tính "
          "(chuỗi ghi sẵn hatang:office_state:1m): xanh kết nối, đỏ mất kết nối, trống là không có dữ liệu.\n"
          "Each office's connection to the centre per minute, as the monthly report counts it (the recorded "
          "hatang:office_state:1m): green connected, red not, empty no data.",
          [target(s.sel(OFFICE.record), "{{agent}}")], w=24, h=10, mappings=value_mappings(CONNECTED),
          steps=thresholds((None, "red"), (1, "green")), custom={"lineWidth": 0, "fillOpacity": 80},
          options=timeline_options())
    b.add("bargauge", "Thiết bị sẵn sàng thấp nhất",
          f"10 thiết bị có tỉ lệ thời gian trả lời thấp nhất trong khoảng thời gian đang xem. {note}\n"
          f"The 10 devices up the least of the time range. {note_en}",
          [target(f"bottomk(10, {up_minutes(DEVICE, s, 'agent, device')} / {minutes})",
                  "{{agent}} {{device}}", instant=True)],
          w=12, h=10, unit="percentunit", minimum=0, maximum=1, decimals=2,
          steps=thresholds((None, "red"), (0.99, "orange"), (0.999, "green")), options=bargauge_options(),
          links=[data_link("Mở bảng Điểm", UID_OFFICE, {"agent": "${__field.labels.agent}"})])


def alerts_selector() -> str:
    """Firing alerts of the selected sites, plus alerts without site labels (central ones).

    `$v|` also matches the empty string: a label that is missing."""
    parts = ['alertstate="firing"'] + [f'{v}=~"${v}|"' for v in ("province", "district", "commune", "agent")]
    return f"ALERTS{{{','.join(parts)}}}"
