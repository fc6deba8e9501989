"""Board 6, Hệ thống giám sát (hatang-he-thong): hatang watching itself.

The collector (broker connection, messages accepted, lost, missing, rejected and pending, remote-write
backlog, clock offset, /metrics render time) and the agents (version, state, clock offset, disk
queue, dropped and refused messages, poll durations and errors, traps, their own CPU and memory).
"""

from __future__ import annotations

from .model import (
    UID_OFFICE,
    UID_SYSTEM,
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
    ts_custom,
    ts_options,
)
from .promql import CONNECTED, SELF_WINDOW, chain, thresholds, value_mappings


def system_board() -> Board:
    s = chain("province", "district", "commune", "agent")
    src = {v: "hatang_agent_up" for v in s.variables}
    b = Board(UID_SYSTEM, "hatang — Hệ thống giám sát",
              "Tình trạng của chính hệ thống hatang: agent (phiên bản, lần cuối nhận tin, hàng đợi, thăm "
              "dò), "
              "collector (nhận tin, từ chối, ghi bù remote write, kết nối broker). / The monitoring system "
              "itself: agents and the collector.",
              s, standard_variables(s, src), links=all_links(UID_SYSTEM))
    agent_up = s.sel("hatang_agent_up")
    b.row("Collector")
    b.add("stat", "Collector – broker MQTT",
          "Collector có kết nối tới broker MQTT không. Mất kết nối: mọi điểm đều không gửi được số liệu (số "
          "liệu được giữ tại agent).\nCollector connected to the MQTT broker?",
          [target("min(hatang_collector_broker_connected)", instant=True)], w=4, h=5,
          mappings=value_mappings(CONNECTED), steps=thresholds((None, "red"), (1, "green")),
          options=stat_options())
    b.add("stat", "Tin nhận mỗi giây",
          "Số bản tin MQTT collector nhận và giải mã mỗi giây (mọi loại).\nMQTT messages accepted per "
          "second.",
          [target("sum(rate(hatang_collector_messages_total[$__rate_interval]))", instant=True)], w=4, h=5,
          unit="short", decimals=1, steps=thresholds((None, "blue")), options=stat_options(graph=True))
    b.add("stat", "Tin bị mất",
          "Bản tin của agent không bao giờ tới, trong khoảng thời gian đang xem (cần tìm nguyên nhân).\n"
          "Agent messages that never arrived, in the time range.",
          [target("sum(increase(hatang_collector_lost_messages_total[$__range]))", instant=True)], w=4, h=5,
          decimals=0, steps=thresholds((None, "green"), (1, "red")), options=stat_options())
    b.add("stat", "Tin đang thiếu",
          "Bản tin đang thiếu nhưng còn có thể tới (agent đang gửi bù).\nMessages missing now that may still "
          "arrive.",
          [target("sum(hatang_collector_missing_messages)", instant=True)], w=4, h=5, decimals=0,
          steps=thresholds((None, "green"), (1, "orange")), options=stat_options())
    b.add("stat", "Chờ xử lý",
          "Bản tin đã nhận chưa xử lý (tăng dần: collector không theo kịp).\nMessages received, not yet "
          "handled (growing: the collector cannot keep up).",
          [target("sum(hatang_collector_incoming_pending_messages)", instant=True)], w=4, h=5, decimals=0,
          steps=thresholds((None, "green"), (100, "orange"), (1000, "red")), options=stat_options(graph=True))
    b.add("stat", "Lệch đồng hồ collector",
          "Đồng hồ collector lệch so với đa số agent (0 nếu không đủ agent đồng ý).\nCollector clock minus "
          "the agents' consensus.",
          [target("max(hatang_collector_clock_offset_seconds)", instant=True)], w=4, h=5, unit="s",
          steps=thresholds((None, "red"), (-10, "green"), (10, "red")), options=stat_options())
    b.add("timeseries", "Bản tin nhận theo loại (tin/s)",
          "Bản tin collector nhận mỗi giây theo loại: status, data (số liệu), replay (gửi bù), self, events "
          "(trap).\nMessages accepted per second by kind.",
          [target("sum by (kind) (rate(hatang_collector_messages_total[$__rate_interval]))", "{{kind}}")],
          w=12, h=8, unit="short", custom=ts_custom(fill=30, stack=True), options=ts_options())
    b.add("timeseries", "Bản tin bị từ chối, trùng, mất (tin/s)",
          "Bản tin bị từ chối theo lý do (json, schema, identity, unknown_agent, cardinality...), bản tin "
          "trùng "
          "bị bỏ, bản tin bị mất.\nRejected messages by reason, duplicates dropped, lost messages.",
          [target("sum by (reason) (rate(hatang_collector_rejected_messages_total[$__rate_interval]))",
                  "từ chối: {{reason}}", "A"),
           target("sum(rate(hatang_collector_duplicate_messages_total[$__rate_interval]))", "trùng", "B"),
           target("sum(rate(hatang_collector_lost_messages_total[$__rate_interval]))", "mất", "C")],
          w=12, h=8, unit="short", custom=ts_custom(fill=0), options=ts_options(("mean", "max")))
    b.add("timeseries", "Ghi bù remote write",
          "Mẫu đang chờ ghi bù vào kho, và mẫu ghi mỗi giây theo kết quả (sent, rejected, dropped); lần "
          "gửi thất bại.\nRemote-write queue and samples per second by outcome; failed requests.",
          [target("sum by (url) (hatang_collector_remote_write_pending_samples)", "chờ ghi {{url}}", "A"),
           target("sum by (url, result) (rate(hatang_collector_remote_write_samples_total"
                  "[$__rate_interval]))",
                  "{{result}}/s {{url}}", "B"),
           target("sum by (url) (rate(hatang_collector_remote_write_failures_total[$__rate_interval]))",
                  "thất bại/s {{url}}", "C")],
          w=12, h=8, unit="short", custom=ts_custom(fill=0), options=ts_options(("lastNotNull", "max")))
    b.add("timeseries", "Hàng đợi của collector",
          "Bản tin chờ xử lý và bản tin chưa xác nhận với broker (tăng dần: kho số liệu chậm hoặc ngừng); "
          "mẫu đến muộn (ghi bù) mỗi giây.\nPending and unacknowledged messages; late samples per second.",
          [target("sum(hatang_collector_incoming_pending_messages)", "chờ xử lý", "A"),
           target("sum(hatang_collector_unacknowledged_messages)", "chưa xác nhận", "B"),
           target("sum(rate(hatang_collector_late_samples_total[$__rate_interval]))", "mẫu đến muộn/s", "C")],
          w=12, h=8, unit="short", custom=ts_custom(fill=0), options=ts_options(("lastNotNull", "max")))
    b.add("timeseries", "Thời gian tạo /metrics",
          "Phân vị 50 % và 99 % thời gian collector tạo phần thiết bị của /metrics.\nTime to render the "
          "device part of /metrics (50th and 99th percentile).",
          [target("histogram_quantile(0.5, sum by (le) (rate(hatang_collector_render_seconds_bucket"
                  "[$__rate_interval])))", "p50", "A"),
           target("histogram_quantile(0.99, sum by (le) (rate(hatang_collector_render_seconds_bucket"
                  "[$__rate_interval])))", "p99", "B")],
          w=12, h=8, unit="s", custom=ts_custom(fill=0), options=ts_options(("mean", "max")))
    b.add("state-timeline", "Kết nối broker",
          "Kết nối MQTT theo thời gian: collector và từng agent.\nBroker connection over time: collector and "
          "each agent.",
          [target("min(hatang_collector_broker_connected)", "collector", "A"),
           target(f"max by (agent) ({s.sel('hatang_agent_broker_connected')})", "{{agent}}", "B")],
          w=12, h=8, mappings=value_mappings(CONNECTED), steps=thresholds((None, "red"), (1, "green")),
          custom={"lineWidth": 0, "fillOpacity": 80}, options=timeline_options())

    b.row("Agent")
    info = s.sel("hatang_agent_info")
    b.add("table", "Agent",
          "Mỗi dòng một agent: phiên bản, trạng thái, thời gian từ lần cuối nhận tin, lệch đồng hồ, hàng đợi "
          "trên đĩa (số bản tin, tuổi bản tin cũ nhất), bản tin bị bỏ; cấu hình: số phiên bản cấu hình từ "
          "trung tâm đang chạy (hoặc mã băm của agent.yaml).\nOne row per agent: version, configuration "
          "(revision from the centre, or a hash of agent.yaml), state, time since last message, clock "
          "offset, disk queue, dropped messages.",
          [target(f"max by (agent, version, config_version, province, commune) ({info})", ref="A",
                  instant=True, table=True),
           target(f"max by (agent) ({agent_up})", ref="B", instant=True, table=True),
           target(f"max by (agent) (time() - {s.sel('hatang_agent_last_seen_timestamp_seconds')})", ref="C",
                  instant=True, table=True),
           target(f"max by (agent) ({s.sel('hatang_agent_clock_offset_seconds')})", ref="D", instant=True,
                  table=True),
           target(f"max by (agent) ({s.sel('hatang_agent_queue_messages')})", ref="E", instant=True,
                  table=True),
           target(f"max by (agent) ({s.sel('hatang_agent_queue_oldest_age_seconds')})", ref="F", instant=True,
                  table=True),
           target(f"sum by (agent) (increase({s.sel('hatang_agent_queue_dropped_total')}[$__range]) + "
                  f"increase({s.sel('hatang_agent_queue_dropped_full_total')}[$__range]))", ref="G",
                  instant=True, table=True)],
          w=24, h=9, transformations=merge_table(
              {"agent": "Agent", "version": "Phiên bản", "config_version": "Cấu hình",
               "province": "Tỉnh/Thành phố", "commune": "Xã/Phường",
               "Value #B": "Trạng thái", "Value #C": "Lần cuối nhận tin", "Value #D": "Lệch đồng hồ",
               "Value #E": "Hàng đợi (tin)", "Value #F": "Tin chờ lâu nhất", "Value #G": "Tin bị bỏ"},
              hide=("Value #A",)),
          overrides=[
              column("Trạng thái", ("mappings", value_mappings(CONNECTED)), cell("color-background"),
                     ("thresholds", thresholds((None, "red"), (1, "green")))),
              column("Lần cuối nhận tin", ("unit", "dtdurations"), cell("color-text"),
                     ("thresholds", thresholds((None, "green"), (300, "orange"), (900, "red")))),
              column("Lệch đồng hồ", ("unit", "s"), ("decimals", 1)),
              column("Tin chờ lâu nhất", ("unit", "dtdurations")),
              column("Tin bị bỏ", ("decimals", 0), cell("color-text"),
                     ("thresholds", thresholds((None, "green"), (1, "red")))),
              column("Agent", ("links", [data_link("Mở bảng Điểm ${__value.raw}", UID_OFFICE,
                                                   {"agent": "${__value.raw}"})])),
          ], options=table_options("Trạng thái"))
    b.add("timeseries", "Hàng đợi trên đĩa của agent",
          "Số bản tin chờ gửi trong hàng đợi của từng agent (tăng khi mất kết nối, giảm khi gửi bù).\n"
          "Messages waiting in each agent's disk queue.",
          [target(s.sel("hatang_agent_queue_messages"), "{{agent}}")], w=12, h=8, decimals=0,
          custom=ts_custom(fill=0), options=ts_options(("lastNotNull", "max")))
    b.add("timeseries", "Bản tin bị bỏ và bị broker từ chối (tin/s)",
          "Bản tin agent phải bỏ (hàng đợi đầy, đĩa đầy) và bản tin broker từ chối (sai quyền, vượt hạn "
          "mức); tính trên 5 phút vì agent gửi các số này mỗi self_metrics_interval (mặc định 60 s).\n"
          "Messages dropped by the agent (queue bound, full disk) and refused by the broker (rates over "
          "5 min: agents send these every self_metrics_interval).",
          [target(f"rate({s.sel('hatang_agent_queue_dropped_total')}[{SELF_WINDOW}])",
                  "{{agent}} bỏ (hàng đợi đầy)", "A"),
           target(f"rate({s.sel('hatang_agent_queue_dropped_full_total')}[{SELF_WINDOW}])",
                  "{{agent}} bỏ (đĩa đầy)", "B"),
           target(f"sum by (agent, reason) (rate({s.sel('hatang_agent_publish_rejected_total')}"
                  f"[{SELF_WINDOW}]))", "{{agent}} bị từ chối: {{reason}}", "C")],
          w=12, h=8, unit="short", custom=ts_custom(fill=0), options=ts_options(("mean", "max")))
    b.add("timeseries", "Thời gian thăm dò thiết bị",
          "Thời gian lần thăm dò gần nhất của mỗi thiết bị, 10 thiết bị chậm nhất. Gần bằng chu kỳ thăm dò "
          "là "
          "sắp bị cắt (deadline).\nDuration of each device's newest poll, slowest 10.",
          [target(f"topk(10, {s.sel('hatang_device_poll_duration_seconds')})", "{{agent}} {{device}}")],
          w=12, h=8, unit="s", custom=ts_custom(fill=0), options=ts_options())
    b.add("timeseries", "Lỗi thăm dò theo lý do (lần/s)",
          "Lỗi khi thăm dò thiết bị theo lý do: timeout (không trả lời), auth (sai SNMPv3), wrong_oid, "
          "not_increasing, bad_value (thiết bị trả lời sai), deadline, empty_profile...\nPoll problems per "
          "second by reason.",
          [target(f"sum by (reason) (rate({s.sel('hatang_device_poll_errors_total')}[$__rate_interval]))",
                  "{{reason}}", "A"),
           target(f"sum(rate({s.sel('hatang_agent_failed_polls_total')}[{SELF_WINDOW}]))",
                  "lần thăm dò không trả lời", "B"),
           target(f"sum(rate({s.sel('hatang_agent_polls_total')}[{SELF_WINDOW}]))", "tổng lần thăm dò",
                  "C")],
          w=12, h=8, unit="short", custom=ts_custom(fill=0), options=ts_options(("mean", "max")))
    b.add("timeseries", "Trap nhận được (trap/s)",
          "Trap SNMP agent nhận được mỗi giây, theo agent và loại trap.\nSNMP traps received per second, by "
          "agent and trap.",
          [target(f"sum by (agent, trap) (rate({s.sel('hatang_trap_received_total')}"
                  "[$__rate_interval]))", "{{agent}} {{trap}}")],
          w=12, h=8, unit="short", custom=ts_custom(fill=0), options=ts_options(("mean", "max")))
    b.add("timeseries", "Tài nguyên của agent",
          "CPU (giây CPU mỗi giây, trung bình 5 phút) và bộ nhớ lớn nhất của tiến trình agent.\nAgent "
          "process CPU (seconds per second, 5-min average) and peak resident memory.",
          [target(f"rate({s.sel('hatang_agent_cpu_seconds_total')}[{SELF_WINDOW}])", "{{agent}} CPU", "A"),
           target(s.sel("hatang_agent_max_resident_memory_bytes"), "{{agent}} bộ nhớ", "B")],
          w=12, h=8, unit="percentunit", custom=ts_custom(fill=0), options=ts_options(("lastNotNull", "max")),
          overrides=[{"matcher": {"id": "byFrameRefID", "options": "B"}, "properties": [
              {"id": "unit", "value": "bytes"}, {"id": "custom.axisPlacement", "value": "right"}]}])
    return b
