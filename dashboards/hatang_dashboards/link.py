"""Board 4, Đường truyền số liệu chuyên dùng (hatang-duong-truyen): the WAN links of every office.

The link probes of the agents (reachability, RTT, loss, time reachable) as a table and a timeline,
their RTT and loss over time, and the traffic, utilisation and status of the critical (WAN/uplink)
interfaces, every office side by side.
"""

from __future__ import annotations

from .model import (
    NEGATIVE_Y_B,
    UID_LINK,
    UID_OFFICE,
    UID_PORT,
    Board,
    all_links,
    cell,
    column,
    data_link,
    merge_table,
    standard_variables,
    table_options,
    target,
    timeline_options,
    ts_custom,
    ts_options,
)
from .promql import (
    AVG,
    LOSS_STEPS,
    MAX,
    OPER_STATUS,
    PROBE_STATE,
    RTT_STEPS,
    UTIL_STEPS,
    chain,
    critical,
    thresholds,
    traffic_bps,
    utilisation,
    value_mappings,
)


def link_board() -> Board:
    s = chain("province", "district", "commune", "agent", "target")
    src = {**{v: "hatang_agent_up" for v in ("province", "district", "commune", "agent")},
           "target": "hatang_probe_up"}
    b = Board(UID_LINK, "hatang — Đường truyền số liệu chuyên dùng",
              "Đường truyền số liệu chuyên dùng của các điểm: đo kiểm (ping/TCP) từ agent tới Trung tâm, độ "
              "trễ, "
              "mất gói, mức sử dụng cổng WAN; mọi điểm cạnh nhau. / Government-network links of every office "
              "side by side: probes from the agents, RTT, loss, WAN port utilisation.",
              s, standard_variables(s, src), links=all_links(UID_LINK))
    up = s.sel("hatang_probe_up")
    loss = s.sel("hatang_probe_loss_ratio")
    rtt = s.sel("hatang_probe_rtt_seconds", AVG)
    b.row("Theo điểm")
    b.add("table", "Đường truyền theo điểm",
          "Mỗi dòng một đích đo của một điểm, lần đo gần nhất: thông/mất kết nối, độ trễ trung bình và lớn "
          "nhất, tỉ lệ mất gói, tỉ lệ thời gian thông trong khoảng đang xem.\nOne row per office and probe "
          "target, latest run: reachable, average and max RTT, loss, share of time reachable in the range.",
          [target(f"max by (agent, device, target, method) ({up})", ref="A", instant=True, table=True),
           target(f"max by (agent, device, target, method) ({rtt})", ref="B", instant=True, table=True),
           target(f"max by (agent, device, target, method) "
                  f"({s.sel('hatang_probe_rtt_seconds', MAX)})", ref="C", instant=True, table=True),
           target(f"max by (agent, device, target, method) ({loss})", ref="D", instant=True, table=True),
           target(f"max by (agent, device, target, method) (avg_over_time({up}[$__range]))", ref="E",
                  instant=True, table=True)],
          w=24, h=9, transformations=merge_table(
              {"agent": "Điểm (agent)", "device": "Tên đo kiểm", "target": "Đích", "method": "Cách đo",
               "Value #A": "Trạng thái", "Value #B": "Độ trễ TB", "Value #C": "Độ trễ lớn nhất",
               "Value #D": "Mất gói", "Value #E": "Thời gian thông"}),
          overrides=[
              column("Trạng thái", ("mappings", value_mappings(PROBE_STATE)), cell("color-background"),
                     ("thresholds", thresholds((None, "red"), (1, "green")))),
              column("Độ trễ TB", ("unit", "s"), cell("color-text"), ("thresholds", RTT_STEPS)),
              column("Độ trễ lớn nhất", ("unit", "s"), cell("color-text"), ("thresholds", RTT_STEPS)),
              column("Mất gói", ("unit", "percentunit"), cell("color-text"), ("thresholds", LOSS_STEPS)),
              column("Thời gian thông", ("unit", "percentunit"), cell("gauge"), ("min", 0), ("max", 1),
                     ("thresholds", thresholds((None, "red"), (0.99, "orange"), (0.999, "green")))),
              column("Điểm (agent)", ("links", [data_link("Mở bảng Điểm ${__value.raw}", UID_OFFICE,
                                                          {"agent": "${__value.raw}"})])),
          ], options=table_options("Trạng thái"))
    b.add("state-timeline", "Thông/mất kết nối theo thời gian",
          "hatang_probe_up của từng điểm theo thời gian: xanh thông, đỏ không tới được đích.\n"
          "Reachability of each office's probe targets over time.",
          [target(up, "{{agent}} → {{device}} ({{target}})")], w=24, h=10,
          mappings=value_mappings(PROBE_STATE), steps=thresholds((None, "red"), (1, "green")),
          custom={"lineWidth": 0, "fillOpacity": 80}, options=timeline_options())

    b.row("Chất lượng đường truyền")
    b.add("timeseries", "Độ trễ (RTT trung bình)",
          "Độ trễ trung bình của mỗi lần đo (ICMP echo hoặc thời gian kết nối TCP); vạch 100 ms và 300 ms.\n"
          "Average round-trip time per run; lines at 100 ms and 300 ms.",
          [target(rtt, "{{agent}} → {{device}}")], w=12, h=9, unit="s", minimum=0, steps=RTT_STEPS,
          custom=ts_custom(fill=0, thresholds_style="dashed"), options=ts_options())
    b.add("timeseries", "Mất gói",
          "Tỉ lệ gói đo không được trả lời trong mỗi lần đo; vạch 5 % và 20 % (cảnh báo HatangLinkLoss).\n"
          "Share of unanswered probes per run; lines at 5 % and 20 % (HatangLinkLoss alert).",
          [target(loss, "{{agent}} → {{device}}")], w=12, h=9, unit="percentunit", minimum=0, maximum=1,
          steps=LOSS_STEPS, custom=ts_custom(fill=0, thresholds_style="dashed"), options=ts_options())

    b.row("Cổng WAN")
    b.add("timeseries", "Lưu lượng cổng WAN (bit/s)",
          "Lưu lượng các cổng quan trọng (uplink/WAN, hatang_interface_critical) của mọi điểm, chặn ở tốc độ "
          "cổng: trên trục vào, dưới trục ra.\nTraffic of every office's critical (WAN/uplink) interfaces, "
          "clamped to their speed: in above, out below.",
          [target(f"{traffic_bps(s, 'in')} {critical(s)}", "{{agent}} {{device}} {{if_name}} vào", "A"),
           target(f"{traffic_bps(s, 'out')} {critical(s)}", "{{agent}} {{device}} {{if_name}} ra", "B")],
          w=12, h=9, unit="bps", custom=ts_custom(), overrides=NEGATIVE_Y_B, options=ts_options(),
          links=[data_link("Xem cổng ${__field.labels.if_name}", UID_PORT, {
              "agent": "${__field.labels.agent}", "device": "${__field.labels.device}",
              "if_name": "${__field.labels.if_name}"})])
    b.add("timeseries", "Mức sử dụng cổng WAN (%)",
          "Mức sử dụng so với tốc độ cổng của các cổng quan trọng; vạch 70 % và 90 %. Đường truyền gần đầy "
          "làm tăng độ trễ và mất gói.\nUtilisation of the critical interfaces; a nearly full link raises "
          "RTT and loss.",
          [target(f"{utilisation(s, 'in')} {critical(s)}", "{{agent}} {{device}} {{if_name}} vào", "A"),
           target(f"{utilisation(s, 'out')} {critical(s)}", "{{agent}} {{device}} {{if_name}} ra", "B")],
          w=12, h=9, unit="percentunit", minimum=0, maximum=1, steps=UTIL_STEPS,
          custom=ts_custom(fill=0, thresholds_style="dashed"), options=ts_options())
    b.add("state-timeline", "Trạng thái cổng WAN",
          "ifOperStatus của các cổng quan trọng của mọi điểm.\nOperational status of every office's critical "
          "interfaces.",
          [target(f"{s.sel('hatang_interface_oper_status')} {critical(s)}",
                  "{{agent}} {{device}} {{if_name}}")],
          w=24, h=8, mappings=value_mappings(OPER_STATUS), steps=thresholds((None, "text")),
          custom={"lineWidth": 0, "fillOpacity": 80}, options=timeline_options())
    return b
