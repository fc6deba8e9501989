"""Board 3, Cổng mạng (hatang-cong): one interface of one device.

Its operational and administrative status, speed and utilisation now; traffic against the interface
speed, packets by kind, errors and discards over time; status changes as a timeline, a count of
changes and the linkDown/linkUp traps of the device; last, the device's hardware health
(`health.health_row`).
"""

from __future__ import annotations

from .health import health_row
from .model import (
    NEGATIVE_Y_B,
    UID_PORT,
    Board,
    all_links,
    standard_variables,
    stat_options,
    target,
    timeline_options,
    ts_custom,
    ts_options,
)
from .promql import (
    ADMIN_STATUS,
    LEGEND_IF,
    LINK_TRAPS,
    OPER_STATUS,
    UTIL_STEPS,
    chain,
    thresholds,
    traffic_bps,
    utilisation,
    value_mappings,
)


def port_board() -> Board:
    s = chain("province", "district", "commune", "agent", "device", "if_name")
    src = {**{v: "hatang_device_up" for v in ("province", "district", "commune", "agent", "device")},
           "if_name": "hatang_interface_oper_status"}
    variables = standard_variables(s, src, single=("agent", "device", "if_name"))
    b = Board(UID_PORT, "hatang — Cổng mạng",
              "Một cổng mạng của một thiết bị: lưu lượng, gói tin, lỗi, huỷ gói, mức sử dụng và thay đổi "
              "trạng thái; cuối bảng là tình trạng phần cứng của thiết bị. / One interface: traffic, "
              "packets, errors, discards, utilisation, status changes; the device's hardware health last.",
              s, variables, links=all_links(UID_PORT))
    b.row("Hiện tại")
    oper = s.sel("hatang_interface_oper_status")
    b.add("stat", "Trạng thái hoạt động",
          "ifOperStatus hiện tại của cổng.\nCurrent operational status (ifOperStatus).",
          [target(f"max({oper})", instant=True)], w=4, h=5, mappings=value_mappings(OPER_STATUS),
          steps=thresholds((None, "text")), options=stat_options())
    b.add("stat", "Trạng thái cấu hình",
          "ifAdminStatus: cổng được bật hay tắt bằng cấu hình.\nAdministrative status (ifAdminStatus).",
          [target(f"max({s.sel('hatang_interface_admin_status')})", instant=True)], w=4, h=5,
          mappings=value_mappings(ADMIN_STATUS), steps=thresholds((None, "text")), options=stat_options())
    b.add("stat", "Tốc độ cổng",
          "Tốc độ cổng (ifHighSpeed, else ifSpeed), bit/giây.\nInterface speed in bit/s.",
          [target(f"max({s.sel('hatang_interface_speed_bytes')}) * 8", instant=True)], w=4, h=5, unit="bps",
          steps=thresholds((None, "blue")), options=stat_options())
    b.add("stat", "Thay đổi trạng thái lần cuối",
          "Thời gian từ lần thay đổi trạng thái gần nhất (ifLastChange), hoặc từ khi thiết bị khởi động nếu "
          "chưa thay đổi. Vàng nếu dưới 1 giờ.\nTime since the interface's last status change.",
          [target(f"time() - max({s.sel('hatang_interface_last_change_timestamp_seconds')})", instant=True)],
          w=4, h=5, unit="s", steps=thresholds((None, "orange"), (3600, "green")), options=stat_options())
    b.add("stat", "Sử dụng vào",
          "Mức sử dụng chiều vào so với tốc độ cổng.\nInbound utilisation.",
          [target(f"max({utilisation(s, 'in')})", instant=True)], w=4, h=5, unit="percentunit",
          steps=UTIL_STEPS, options=stat_options(graph=True))
    b.add("stat", "Sử dụng ra",
          "Mức sử dụng chiều ra so với tốc độ cổng.\nOutbound utilisation.",
          [target(f"max({utilisation(s, 'out')})", instant=True)], w=4, h=5, unit="percentunit",
          steps=UTIL_STEPS, options=stat_options(graph=True))

    b.row("Lưu lượng")
    b.add("timeseries", "Lưu lượng vào/ra (bit/s)",
          "Lưu lượng của cổng, bit/giây (trên trục: vào, dưới trục: ra), chặn ở tốc độ cổng. Đường nét đứt: "
          "tốc độ cổng.\nTraffic in bit/s (in above, out below), clamped to the interface speed; dashed: the "
          "interface speed.",
          [target(traffic_bps(s, "in"), LEGEND_IF + " vào", "A"),
           target(traffic_bps(s, "out"), LEGEND_IF + " ra", "B"),
           target(f"{s.sel('hatang_interface_speed_bytes')} * 8", LEGEND_IF + " tốc độ", "C")],
          w=24, h=9, unit="bps", custom=ts_custom(), options=ts_options(),
          overrides=[*NEGATIVE_Y_B, {"matcher": {"id": "byFrameRefID", "options": "C"}, "properties": [
              {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
              {"id": "custom.fillOpacity", "value": 0}, {"id": "color", "value": {"mode": "fixed",
                                                                                  "fixedColor": "red"}}]}])
    b.add("timeseries", "Mức sử dụng (%)",
          "Lưu lượng so với tốc độ cổng, từng chiều; vạch 70 % và 90 %.\nUtilisation per direction; lines at "
          "70 % and 90 %.",
          [target(utilisation(s, "in"), LEGEND_IF + " vào", "A"),
           target(utilisation(s, "out"), LEGEND_IF + " ra", "B")],
          w=12, h=8, unit="percentunit", minimum=0, maximum=1, steps=UTIL_STEPS,
          custom=ts_custom(thresholds_style="dashed"), options=ts_options())
    packets = []
    kinds = [(d, k) for d in ("in", "out") for k in ("unicast", "multicast", "broadcast")]
    for i, (d, kind) in enumerate(kinds):
        packets.append(target(f"rate({s.sel(f'hatang_interface_{d}_{kind}_packets_total')}[$__rate_interval])",
                              f"{kind} {'vào' if d == 'in' else 'ra'}", "ABCDEF"[i]))
    b.add("timeseries", "Gói tin (gói/s)",
          "Gói tin mỗi giây theo loại (unicast, multicast, broadcast) và chiều. Broadcast tăng đột biến "
          "thường là vòng lặp mạng (loop).\nPackets per second by kind and direction; a broadcast surge "
          "usually means a switching loop.",
          packets, w=12, h=8, unit="pps", custom=ts_custom(), options=ts_options(("mean", "max")))
    b.add("timeseries", "Lỗi (gói/s)",
          "Gói lỗi mỗi giây (ifInErrors, ifOutErrors): cáp, đầu nối, lệch duplex, nhiễu.\n"
          "Errored packets per second: cabling, connectors, duplex mismatch.",
          [target(f"rate({s.sel('hatang_interface_in_errors_total')}[$__rate_interval])", "lỗi vào", "A"),
           target(f"rate({s.sel('hatang_interface_out_errors_total')}[$__rate_interval])", "lỗi ra", "B")],
          w=12, h=8, unit="pps", custom=ts_custom(), options=ts_options(("mean", "max")),
          steps=thresholds((None, "green"), (0.01, "red")))
    b.add("timeseries", "Gói bị huỷ (gói/s)",
          "Gói bị huỷ mỗi giây (ifInDiscards, ifOutDiscards), thường do nghẽn hoặc đầy bộ đệm.\n"
          "Discarded packets per second, usually congestion or full buffers.",
          [target(f"rate({s.sel('hatang_interface_in_discards_total')}[$__rate_interval])", "huỷ vào", "A"),
           target(f"rate({s.sel('hatang_interface_out_discards_total')}[$__rate_interval])", "huỷ ra", "B")],
          w=12, h=8, unit="pps", custom=ts_custom(), options=ts_options(("mean", "max")))

    b.row("Thay đổi trạng thái")
    b.add("state-timeline", "Trạng thái hoạt động theo thời gian",
          "ifOperStatus theo thời gian: mỗi lần chuyển màu là một lần cổng lên/xuống (flap).\n"
          "Operational status over time: every colour change is a flap.",
          [target(oper, LEGEND_IF + " hoạt động", "A"),
           target(s.sel("hatang_interface_admin_status"), LEGEND_IF + " cấu hình", "B")],
          w=16, h=6, mappings=value_mappings(OPER_STATUS), steps=thresholds((None, "text")),
          custom={"lineWidth": 0, "fillOpacity": 80}, options=timeline_options(),
          overrides=[{"matcher": {"id": "byFrameRefID", "options": "B"},
                      "properties": [{"id": "mappings", "value": value_mappings(ADMIN_STATUS)}]}])
    b.add("stat", "Số lần đổi trạng thái",
          "Số lần trạng thái hoạt động thay đổi trong khoảng thời gian đang xem (theo các lần thăm dò; lần "
          "lên xuống nhanh hơn chu kỳ thăm dò chỉ thấy qua trap linkDown/linkUp).\nStatus changes seen by "
          "the polls in the time range (faster flaps show only as linkDown/linkUp traps).",
          [target(f"sum(changes({oper}[$__range]))", instant=True)], w=4, h=6, decimals=0,
          steps=thresholds((None, "green"), (1, "orange"), (5, "red")), options=stat_options())
    b.add("stat", "Trap linkDown/linkUp",
          "Trap linkDown và linkUp từ thiết bị này trong khoảng thời gian đang xem (trap không mang tên "
          "cổng, "
          "nên đếm cho cả thiết bị).\nlinkDown/linkUp traps from this device in the time range (counted per "
          "device).",
          [target(f"sum(increase({s.sel('hatang_trap_received_total', LINK_TRAPS)}"
                  "[$__range])) or vector(0)", instant=True)], w=4, h=6, decimals=0,
          steps=thresholds((None, "green"), (1, "orange")), options=stat_options())
    health_row(b, s, legend="{{component}}")
    return b
