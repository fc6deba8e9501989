"""The code behind dashboards/build.py, which generates the hatang Grafana dashboards.

`promql` holds the metric contract and the PromQL, thresholds and value mappings the boards share;
`model` the Grafana JSON model (Board, variables, targets, panel option presets, links); one module per
board builds it: `province`, `office`, `port`, `link`, `server`, `system`. Standard library only; the
boards import `model` and `promql`, `model` imports `promql`, and `promql` imports nothing from here.
"""
