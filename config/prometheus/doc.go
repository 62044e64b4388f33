// Package prometheus holds only tests: they check the Prometheus and
// Grafana files of this directory against what the attacher really exports.
//
//   - rules.yaml (the PrometheusRule) has the same rule groups as
//     rules/attacher.rules.yaml, the plain rule file that
//     `make monitoring-check` runs `promtool check rules` and
//     `promtool test rules` on;
//   - every alert has a severity, a summary and a description that points to
//     `csi-attacher doctor` and the README's troubleshooting section, and
//     rules/attacher.rules.test.yaml has a firing and a quiet case for it;
//   - every metric named in a rule or in a dashboard query is one the binary
//     exports (internal/metrics, internal/csi, controller-runtime) or
//     Prometheus' per-target up (and, in the dashboard only,
//     kube-state-metrics' container restarts), with histogram series
//     suffixes (_bucket, _sum, _count) only on histograms and label
//     matchers only on labels the metric has;
//   - dashboard.json parses, every panel has a query, the driver_name
//     variable reads csi_attacher_driver_ready, the job variable lists the
//     jobs that scrape an attacher, and every query of a metric other
//     sidecars export too (csi_sidecar_operations_seconds, process_*, go_*)
//     selects those jobs;
//   - the ServiceMonitor (monitor.yaml) selects the metrics Service of
//     config/components/sidecar by its labels and port name.
//
// Run them with `go test ./config/prometheus/` (part of `make test`).
// kustomize builds this directory from kustomization.yaml and ignores the
// Go files.
package prometheus
