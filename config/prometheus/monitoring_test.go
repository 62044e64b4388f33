package prometheus_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	// Puts the attacher's workqueue_* metrics in place of controller-runtime's.
	_ "github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/metrics"

	// Registers controller-runtime's reconcile metrics (pkg/internal/controller/metrics)
	// and work-queue metrics (pkg/internal/metrics, through the priority queue) with
	// crmetrics.Registry, as in the binary, for TestControllerRuntimeMetricsRegistered.
	_ "sigs.k8s.io/controller-runtime/pkg/controller"
)

// Files under test, relative to this directory, config/prometheus.
const (
	ruleFile      = "rules/attacher.rules.yaml"
	ruleTestFile  = "rules/attacher.rules.test.yaml"
	prometheusCRD = "rules.yaml"
	monitorFile   = "monitor.yaml"
	dashboardFile = "dashboard.json"
	serviceFile   = "../components/sidecar/service.yaml"
	runbookFile   = "../../docs/runbook.md"
	// runbookURL is where docs/runbook.md is published; each alert's
	// runbook_url is it plus the anchor of the alert's section.
	runbookURL = "https://github.com/csi-attacher/csi-attacher/blob/main/docs/runbook.md#"
)

// metric is one metric family the attacher exports.
type metric struct {
	labels    []string // label names, const labels included
	histogram bool     // a classic histogram: series _bucket{le}, _sum and _count
	source    string   // where it is defined
}

// The attacher's own metrics, from the constants of internal/metrics and
// internal/csi. TestOwnMetricsMatchRegistry checks this table against what
// metrics.New really registers.
var ownMetrics = map[string]metric{
	metrics.AttachDurationSeconds: {labels: []string{metrics.LabelDriverName}, histogram: true, source: "internal/metrics"},
	metrics.DetachDurationSeconds: {labels: []string{metrics.LabelDriverName}, histogram: true, source: "internal/metrics"},
	metrics.OperationErrorsTotal: {
		labels: []string{metrics.LabelDriverName, metrics.LabelOperation, metrics.LabelGRPCCode}, source: "internal/metrics",
	},
	metrics.VolumeAttachments:  {labels: []string{metrics.LabelDriverName, metrics.LabelState}, source: "internal/metrics"},
	metrics.DriverReady:        {labels: []string{metrics.LabelDriverName}, source: "internal/metrics"},
	metrics.Ready:              {labels: []string{metrics.LabelDriverName}, source: "internal/metrics"},
	metrics.CSIConnectionUp:    {labels: []string{metrics.LabelDriverName}, source: "internal/metrics"},
	metrics.DriverOutagesTotal: {labels: []string{metrics.LabelDriverName}, source: "internal/metrics"},
	metrics.VolumeDriftTotal:   {labels: []string{metrics.LabelDriverName, metrics.LabelKind}, source: "internal/metrics"},
	metrics.TrackedObjects:     {labels: []string{metrics.LabelDriverName, metrics.LabelMap}, source: "internal/metrics"},
	metrics.OldestPendingSeconds: {
		labels: []string{metrics.LabelDriverName, metrics.LabelOperation}, source: "internal/metrics",
	},
	metrics.MaxInflight: {labels: []string{metrics.LabelDriverName}, source: "internal/metrics"},
	metrics.BuildInfo: {
		labels: []string{metrics.LabelDriverName, metrics.LabelVersion, metrics.LabelCommit, metrics.LabelBuildDate, metrics.LabelGoVersion},
		source: "internal/metrics",
	},
	csi.MetricOperationsSeconds: {
		labels: []string{csi.LabelDriverName, csi.LabelMethodName, csi.LabelGRPCStatusCode}, histogram: true,
		source: "internal/csi",
	},
}

// controller-runtime v0.25.2's metrics, registered with crmetrics.Registry,
// which main.go serves on /metrics. Read from its source:
//
//   - workqueue_*: registered by internal/metrics (WorkqueueProvider) in
//     place of controller-runtime's pkg/internal/metrics/workqueue.go, with
//     the same names and label names: name is the reference's queue name
//     (csi-attacher-va for both VolumeAttachment lanes, csi-attacher-pv),
//     controller the controller's name (volumeattachment,
//     volumeattachment-detach, persistentvolume). workqueue_depth also has
//     priority, always empty.
//   - controller_runtime_*: pkg/internal/controller/metrics/metrics.go.
//   - leader_election_master_status{name}: pkg/metrics/leaderelection.go, set
//     through client-go's leaderelection metrics provider: 0 by every replica
//     as soon as it creates its LeaderElector, 1 by the leader; name is the
//     Lease name (LeaderElectionID, external-attacher-leader-<driver>).
//
// TestControllerRuntimeMetricsRegistered checks every name is registered.
var controllerRuntimeMetrics = map[string]metric{
	"workqueue_depth":                             {labels: []string{"name", "controller", "priority"}},
	"workqueue_adds_total":                        {labels: []string{"name", "controller"}},
	"workqueue_queue_duration_seconds":            {labels: []string{"name", "controller"}, histogram: true},
	"workqueue_work_duration_seconds":             {labels: []string{"name", "controller"}, histogram: true},
	"workqueue_unfinished_work_seconds":           {labels: []string{"name", "controller"}},
	"workqueue_longest_running_processor_seconds": {labels: []string{"name", "controller"}},
	"workqueue_retries_total":                     {labels: []string{"name", "controller"}},

	"controller_runtime_reconcile_total":                 {labels: []string{"controller", "result"}},
	"controller_runtime_reconcile_errors_total":          {labels: []string{"controller"}},
	"controller_runtime_terminal_reconcile_errors_total": {labels: []string{"controller"}},
	"controller_runtime_reconcile_panics_total":          {labels: []string{"controller"}},
	"controller_runtime_reconcile_time_seconds":          {labels: []string{"controller"}, histogram: true},
	"controller_runtime_reconcile_timeouts_total":        {labels: []string{"controller"}},
	"controller_runtime_max_concurrent_reconciles":       {labels: []string{"controller"}},
	"controller_runtime_active_workers":                  {labels: []string{"controller"}},
	"leader_election_master_status":                      {labels: []string{"name"}},

	// The process and Go collectors controller-runtime registers
	// (pkg/internal/controller/metrics), for the dashboard's CPU, memory
	// and restarts panels.
	"process_cpu_seconds_total":     {},
	"process_resident_memory_bytes": {},
	"process_start_time_seconds":    {},
	"go_memstats_heap_inuse_bytes":  {},
}

// dashboardOnlyMetrics come from other exporters; the dashboard may show
// them, the rules may not depend on them.
var dashboardOnlyMetrics = map[string]metric{
	// Container restarts as the kubelet counts them, which also sees an
	// attacher that exits before it serves /metrics.
	"kube_pod_container_status_restarts_total": {
		labels: []string{"namespace", "pod", "container", "uid"}, source: "kube-state-metrics",
	},
}

// prometheusMetrics are the series Prometheus writes itself for every
// scrape target; the rules may use them next to what the binary exports.
var prometheusMetrics = map[string]metric{
	// up is 1 when the target's last scrape succeeded, else 0.
	"up": {source: "Prometheus (one per scrape target)"},
}

// targetLabels are added to every series by the scrape: by Prometheus
// (instance, job) and by the Prometheus Operator for a ServiceMonitor target.
var targetLabels = []string{"instance", "job", "namespace", "pod", "service", "container", "endpoint"}

// exported returns every metric the binary exports, and the per-target
// series Prometheus adds (prometheusMetrics), by name.
func exported() map[string]metric {
	all := map[string]metric{}
	for n, m := range ownMetrics {
		all[n] = m
	}
	for n, m := range controllerRuntimeMetrics {
		if m.source == "" {
			m.source = "controller-runtime"
		}
		all[n] = m
	}
	for n, m := range prometheusMetrics {
		all[n] = m
	}
	return all
}

var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// checkSelector reports whether a selector of series name with label
// matchers on labels is valid for what the binary exports.
func checkSelector(all map[string]metric, name string, labels []string) error {
	m, ok := all[name]
	allowed := []string{"__name__"}
	if !ok {
		for _, suffix := range histogramSuffixes {
			base, found := strings.CutSuffix(name, suffix)
			if !found {
				continue
			}
			if bm, isMetric := all[base]; isMetric {
				if !bm.histogram {
					return fmt.Errorf("metric %q: %s is not a histogram", name, base)
				}
				m, ok = bm, true
				if suffix == "_bucket" {
					allowed = append(allowed, "le")
				}
			}
		}
	}
	if !ok {
		return fmt.Errorf("metric %q is not exported by csi-attacher", name)
	}
	allowed = append(append(allowed, m.labels...), targetLabels...)
	for _, l := range labels {
		if !slices.Contains(allowed, l) {
			return fmt.Errorf("metric %q has no label %q (it has %v plus the target labels %v)", name, l, m.labels, targetLabels)
		}
	}
	return nil
}

// selector is a metric named in a PromQL expression, with the label names
// of its matchers.
type selector struct {
	name   string
	labels []string
}

var (
	// A string literal: double- or single-quoted with escapes, or raw.
	stringRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	// A label-matcher block and the identifier, if any, right before it.
	matchersRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^{}]*)\}`)
	// One matcher inside it; values are already blanked to "".
	matcherRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*""`)
	// Range and subquery durations, offsets in brackets.
	rangeRE = regexp.MustCompile(`\[[^\[\]]*\]`)
	// Grouping and vector-matching label lists.
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	// Grafana variables: $name, ${name}, ${name:format}, [[name]].
	variableRE = regexp.MustCompile(`\$\{[^}]*\}|\$[a-zA-Z_][a-zA-Z0-9_]*|\[\[[^\]]*\]\]`)
	// Tokens: numbers and durations (5m, 0.99, 1e3, 0x1f) are swallowed
	// whole by the first alternative; the second is an identifier.
	tokenRE = regexp.MustCompile(`[0-9][a-zA-Z0-9_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// promqlKeywords are identifiers that are not metric names and are not
// followed by "(" (functions and aggregations are recognized by that).
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "atan2": true,
	"inf": true, "nan": true, "start": true, "end": true,
}

// selectors returns the metrics named in a PromQL expression (a rule's expr
// or a Grafana target's expr, Grafana variables allowed). It is a scanner,
// not a parser: it blanks strings, takes label matchers out of {...}, drops
// [...] ranges, grouping label lists, variables and numbers, and takes every
// identifier left that is not a keyword and not followed by "(" (a function
// or an aggregation) as a metric name.
func selectors(expr string) []selector {
	s := variableRE.ReplaceAllString(stringRE.ReplaceAllString(expr, `""`), " ")
	var out []selector
	var matcherLabels [][]string
	s = matchersRE.ReplaceAllStringFunc(s, func(block string) string {
		sm := matchersRE.FindStringSubmatch(block)
		var labels []string
		for _, m := range matcherRE.FindAllStringSubmatch(sm[2], -1) {
			labels = append(labels, m[1])
		}
		if sm[1] == "" || promqlKeywords[strings.ToLower(sm[1])] {
			// {__name__="..."} or a bare {...}: the name is in a string.
			out = append(out, selector{name: "", labels: labels})
			return " "
		}
		// Keep the name for the scan below, and its matchers for later.
		matcherLabels = append(matcherLabels, labels)
		return fmt.Sprintf(" %s\x00%d ", sm[1], len(matcherLabels)-1)
	})
	s = rangeRE.ReplaceAllString(s, " ")
	s = groupingRE.ReplaceAllString(s, " ")
	for _, loc := range tokenRE.FindAllStringIndex(s, -1) {
		tok := s[loc[0]:loc[1]]
		if tok[0] >= '0' && tok[0] <= '9' || promqlKeywords[strings.ToLower(tok)] {
			continue
		}
		rest := strings.TrimLeft(s[loc[1]:], " \t\r\n")
		if strings.HasPrefix(rest, "(") {
			continue // function or aggregation
		}
		sel := selector{name: tok}
		if strings.HasPrefix(s[loc[1]:], "\x00") {
			var i int
			if _, err := fmt.Sscanf(s[loc[1]+1:], "%d", &i); err == nil {
				sel.labels = matcherLabels[i]
			}
		}
		out = append(out, sel)
	}
	return out
}

// checkExpr checks every metric an expression names; where names it in
// messages.
func checkExpr(t *testing.T, all map[string]metric, where, expr string) {
	t.Helper()
	sels := selectors(expr)
	if len(sels) == 0 {
		t.Errorf("%s: no metric found in %q", where, expr)
	}
	for _, sel := range sels {
		if sel.name == "" {
			t.Errorf("%s: selector without a metric name in %q", where, expr)
			continue
		}
		if err := checkSelector(all, sel.name, sel.labels); err != nil {
			t.Errorf("%s: %v\n  in %s", where, err, strings.TrimSpace(expr))
		}
	}
}

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []selector
	}{
		{`up`, []selector{{name: "up"}}},
		{
			`histogram_quantile(0.99, sum by (driver_name, le) (rate(a_seconds_bucket{driver_name=~"$driver_name", x!="a}b"}[$__rate_interval]))) > 300`,
			[]selector{{name: "a_seconds_bucket", labels: []string{"driver_name", "x"}}},
		},
		{
			"sum without (priority) (deriv(q{name=~\"va.*\"}[10m])) > 0 and on (instance) group_left() b offset 5m unless c{}",
			[]selector{{name: "q", labels: []string{"name"}}, {name: "b"}, {name: "c"}},
		},
		{`sum(increase(c_total[${__range}])) by (x) / 1e3 * bool inf`, []selector{{name: "c_total"}}},
		{`{__name__="x"}`, []selector{{name: "", labels: []string{"__name__"}}}},
		{`max_over_time(g[1h:5m]) @ end()`, []selector{{name: "g"}}},
	} {
		got := selectors(tc.expr)
		for i := range got {
			if len(got[i].labels) == 0 {
				got[i].labels = nil
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("selectors(%q) = %+v, want %+v", tc.expr, got, tc.want)
		}
	}
}

// Rule files.

type ruleFileContent struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readRules(t *testing.T) ruleFileContent {
	t.Helper()
	var rf ruleFileContent
	readYAML(t, ruleFile, &rf)
	if len(rf.Groups) == 0 {
		t.Fatalf("%s: no rule groups", ruleFile)
	}
	return rf
}

// TestPrometheusRuleMatchesRuleFile: the PrometheusRule's spec and the rule
// file promtool checks must hold the same groups, compared as parsed YAML.
func TestPrometheusRuleMatchesRuleFile(t *testing.T) {
	var raw map[string]any
	readYAML(t, ruleFile, &raw)

	var pr struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   map[string]any `json:"metadata"`
		Spec       map[string]any `json:"spec"`
	}
	readYAML(t, prometheusCRD, &pr)
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Errorf("%s: got %s %s, want monitoring.coreos.com/v1 PrometheusRule", prometheusCRD, pr.APIVersion, pr.Kind)
	}
	if reflect.DeepEqual(pr.Spec, raw) {
		return
	}
	t.Errorf("the spec of %s differs from %s: edit both the same way", prometheusCRD, ruleFile)
	// Say where, rule by rule.
	spec, file := asJSONLines(t, pr.Spec), asJSONLines(t, raw)
	for i := 0; i < max(len(spec), len(file)); i++ {
		var a, b string
		if i < len(spec) {
			a = spec[i]
		}
		if i < len(file) {
			b = file[i]
		}
		if a != b {
			t.Errorf("\nPrometheusRule: %s\nrule file:      %s", a, b)
		}
	}
}

// asJSONLines renders rule groups as one line per field of each group and
// rule, for a readable difference.
func asJSONLines(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var top struct {
		Groups []map[string]json.RawMessage `json:"groups"`
	}
	if err := json.Unmarshal(b, &top); err != nil {
		return []string{string(b)}
	}
	fields := func(prefix string, m map[string]json.RawMessage) []string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			out = append(out, fmt.Sprintf("%s %s: %s", prefix, k, m[k]))
		}
		return out
	}
	var lines []string
	for gi, g := range top.Groups {
		var rules []map[string]json.RawMessage
		_ = json.Unmarshal(g["rules"], &rules)
		delete(g, "rules")
		lines = append(lines, fields(fmt.Sprintf("groups[%d]", gi), g)...)
		for ri, r := range rules {
			name := r["alert"]
			if name == nil {
				name = r["record"]
			}
			lines = append(lines, fields(fmt.Sprintf("groups[%d].rules[%d] %s", gi, ri, name), r)...)
		}
	}
	return lines
}

// TestAlerts: each alert is well formed and points operators to the doctor
// and the README.
func TestAlerts(t *testing.T) {
	rf := readRules(t)
	runbook, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	var headings []string
	for _, l := range strings.Split(string(runbook), "\n") {
		if strings.HasPrefix(l, "## ") {
			headings = append(headings, strings.TrimSpace(l))
		}
	}
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if !strings.HasPrefix(r.Alert, "CSIAttacher") {
				t.Errorf("alert %s: name does not start with CSIAttacher", r.Alert)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
			}
			if d, err := time.ParseDuration(r.For); err != nil || d <= 0 {
				t.Errorf("alert %s: for %q, want a positive duration", r.Alert, r.For)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s: no summary annotation", r.Alert)
			}
			// The runbook section of the alert, by its GitHub heading anchor.
			if want := runbookURL + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !slices.Contains(headings, "## "+r.Alert) {
				t.Errorf("alert %s: %s has no section \"## %s\" for its runbook_url", r.Alert, runbookFile, r.Alert)
			}
			desc := r.Annotations["description"]
			for _, want := range []string{"csi-attacher doctor", "README", "Troubleshooting"} {
				if !strings.Contains(desc, want) {
					t.Errorf("alert %s: description does not mention %q", r.Alert, want)
				}
			}
		}
	}
	for _, want := range []string{
		"CSIAttacherAttachErrorsRising", "CSIAttacherDetachErrorsRising", "CSIAttacherAttachLatencyHigh",
		"CSIAttacherDriverNotReady", "CSIAttacherNoLeader", "CSIAttacherBacklogGrowing",
		"CSIAttacherMetricsAbsent", "CSIAttacherNotReady", "CSIAttacherAttachStuck", "CSIAttacherDetachStuck",
		"CSIAttacherDriverMetricsAbsent", "CSIAttacherTargetDown",
	} {
		if !seen[want] {
			t.Errorf("%s: alert %s missing", ruleFile, want)
		}
	}
}

// TestRuleExpressionsUseExportedMetrics: every metric in every rule exists.
func TestRuleExpressionsUseExportedMetrics(t *testing.T) {
	all := exported()
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			checkExpr(t, all, fmt.Sprintf("%s: rule %s%s", ruleFile, r.Alert, r.Record), r.Expr)
		}
	}
}

// TestEveryAlertUnitTested: attacher.rules.test.yaml loads the rule file and
// has, for every alert, a case where it fires and one where it does not.
func TestEveryAlertUnitTested(t *testing.T) {
	var tf struct {
		RuleFiles []string `json:"rule_files"`
		Tests     []struct {
			Name          string `json:"name"`
			AlertRuleTest []struct {
				AlertName string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	b, err := os.ReadFile(ruleTestFile)
	if err != nil {
		t.Fatal(err)
	}
	// Not strict: promtool's format has fields this test does not look at.
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatalf("%s: %v", ruleTestFile, err)
	}
	if !slices.Contains(tf.RuleFiles, filepath.Base(ruleFile)) {
		t.Errorf("%s: rule_files %v does not load %s", ruleTestFile, tf.RuleFiles, filepath.Base(ruleFile))
	}
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.AlertName] = true
			} else {
				quiet[a.AlertName] = true
			}
		}
	}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !firing[r.Alert] {
				t.Errorf("%s: no case where %s fires", ruleTestFile, r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("%s: no case where %s does not fire", ruleTestFile, r.Alert)
			}
		}
	}
}

// Dashboard.

type dashboardPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // of a collapsed row
}

type dashboard struct {
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	SchemaVersion int              `json:"schemaVersion"`
	Panels        []dashboardPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Definition string          `json:"definition"`
			Query      json.RawMessage `json:"query"`
			IncludeAll bool            `json:"includeAll"`
			AllValue   string          `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// panels returns the dashboard's panels, rows' nested panels included, rows
// themselves left out.
func (d dashboard) panels() []dashboardPanel {
	var out []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			out = append(out, p)
		}
	}
	walk(d.Panels)
	return out
}

func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID != "csi-attacher" {
		t.Errorf("uid %q, want csi-attacher", d.UID)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want a current one (>= 36)", d.SchemaVersion)
	}
	panels := d.panels()
	if len(panels) == 0 {
		t.Fatal("no panels")
	}
	ids := map[int]bool{}
	all := exported()
	for n, m := range dashboardOnlyMetrics {
		all[n] = m
	}
	used := map[string]bool{}
	for _, p := range panels {
		where := fmt.Sprintf("%s: panel %d %q", dashboardFile, p.ID, p.Title)
		if ids[p.ID] {
			t.Errorf("%s: duplicate id", where)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 {
			t.Errorf("%s: no target", where)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: target %s has no expr", where, tg.RefID)
				continue
			}
			checkExpr(t, all, where, tg.Expr)
			for _, s := range selectors(tg.Expr) {
				used[s.name] = true
				// Other sidecars of the driver's Pod export these too,
				// with the same driver_name (csi_sidecar_operations_seconds)
				// or none (process_*, go_*): only the attacher's jobs.
				shared := strings.HasPrefix(s.name, csi.MetricOperationsSeconds) ||
					strings.HasPrefix(s.name, "process_") || strings.HasPrefix(s.name, "go_")
				if shared && !slices.Contains(s.labels, "job") {
					t.Errorf("%s: %s is exported by other sidecars too; select the attacher's with job=~\"$job\"", where, s.name)
				}
			}
		}
	}
	// The panels the dashboard promises.
	for _, want := range []string{
		metrics.AttachDurationSeconds + "_bucket", metrics.DetachDurationSeconds + "_bucket",
		metrics.OperationErrorsTotal, metrics.VolumeAttachments, metrics.DriverReady, metrics.CSIConnectionUp,
		metrics.VolumeDriftTotal,
		"workqueue_depth", csi.MetricOperationsSeconds + "_count", csi.MetricOperationsSeconds + "_bucket",
		"leader_election_master_status",
		metrics.OldestPendingSeconds, metrics.MaxInflight, metrics.BuildInfo,
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds",
		"kube_pod_container_status_restarts_total",
	} {
		if !used[want] {
			t.Errorf("%s: no panel queries %s", dashboardFile, want)
		}
	}

	// The driver_name variable lists the drivers from csi_attacher_driver_ready.
	labelValuesRE := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^{}]*\})?\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
	var found, foundJob bool
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesRE.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("%s: variable %s: definition %q is not label_values(metric, label) or label_values(metric{...}, label)", dashboardFile, v.Name, v.Definition)
			continue
		}
		if err := checkSelector(all, m[1], []string{m[3]}); err != nil {
			t.Errorf("%s: variable %s: %v", dashboardFile, v.Name, err)
		}
		if m[2] != "" {
			checkExpr(t, all, fmt.Sprintf("%s: variable %s", dashboardFile, v.Name), m[1]+m[2])
		}
		// The query is the definition itself, or an object holding it.
		var query string
		if json.Unmarshal(v.Query, &query) != nil {
			var obj struct {
				Query string `json:"query"`
			}
			_ = json.Unmarshal(v.Query, &obj)
			query = obj.Query
		}
		if query != v.Definition {
			t.Errorf("%s: variable %s: query %s does not match definition %q", dashboardFile, v.Name, v.Query, v.Definition)
		}
		if v.Name == "driver_name" {
			found = true
			if want := "label_values(" + metrics.DriverReady + ", " + metrics.LabelDriverName + ")"; v.Definition != want {
				t.Errorf("%s: variable driver_name: %q, want %q", dashboardFile, v.Definition, want)
			}
		}
		if v.Name == "job" {
			foundJob = true
			// The jobs that scrape an attacher of the selected drivers.
			if want := "label_values(" + metrics.Ready + `{driver_name=~"$driver_name"}, job)`; v.Definition != want {
				t.Errorf("%s: variable job: %q, want %q", dashboardFile, v.Definition, want)
			}
			// All must mean the listed jobs: with ".*" the CSI call
			// panels would show the other sidecars' calls again.
			if v.IncludeAll && v.AllValue != "" {
				t.Errorf("%s: variable job: allValue %q; leave it empty so that All is the attacher jobs listed", dashboardFile, v.AllValue)
			}
		}
	}
	if !found {
		t.Errorf("%s: no driver_name variable", dashboardFile)
	}
	if !foundJob {
		t.Errorf("%s: no job variable", dashboardFile)
	}
}

// TestServiceMonitorSelectsMetricsService: the ServiceMonitor's selector and
// port match the Service of config/components/sidecar.
func TestServiceMonitorSelectsMetricsService(t *testing.T) {
	var svc struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Ports []struct {
				Name string `json:"name"`
			} `json:"ports"`
		} `json:"spec"`
	}
	b, err := os.ReadFile(serviceFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &svc); err != nil {
		t.Fatalf("%s: %v", serviceFile, err)
	}
	var sm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port string `json:"port"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	b, err = os.ReadFile(monitorFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &sm); err != nil {
		t.Fatalf("%s: %v", monitorFile, err)
	}
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Kind != "ServiceMonitor" {
		t.Errorf("%s: got %s %s, want monitoring.coreos.com/v1 ServiceMonitor", monitorFile, sm.APIVersion, sm.Kind)
	}
	if len(sm.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("%s: empty selector", monitorFile)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Metadata.Labels[k] != v {
			t.Errorf("%s: selects %s=%s, which %s does not carry (labels %v)", monitorFile, k, v, serviceFile, svc.Metadata.Labels)
		}
	}
	if len(sm.Spec.Endpoints) == 0 {
		t.Fatalf("%s: no endpoints", monitorFile)
	}
	for _, ep := range sm.Spec.Endpoints {
		if !slices.ContainsFunc(svc.Spec.Ports, func(p struct {
			Name string `json:"name"`
		}) bool {
			return p.Name == ep.Port
		}) {
			t.Errorf("%s: endpoint port %q is not a port name of %s", monitorFile, ep.Port, serviceFile)
		}
	}
}

// Metric tables against the real registries.

// TestOwnMetricsMatchRegistry: ownMetrics lists exactly what metrics.New
// registers, with the same label names.
func TestOwnMetricsMatchRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New("probe.csi.example.com")
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	m.SetSnapshotSource(func() (metrics.Snapshot, error) { return metrics.Snapshot{Attached: 1, OldestAttach: time.Second}, nil })
	m.SetTrackedSource(func() map[string]int { return map[string]int{"locks": 1} })
	m.SetMaxInflight(8)
	m.SetBuildInfo("v1.2.3", "0123abc", "2026-01-02T03:04:05Z")
	m.SetDriverReady(true)
	m.SetConnectionUp(true)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, f := range families {
		labels := map[string]bool{}
		for _, mm := range f.GetMetric() {
			for _, lp := range mm.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		names := make([]string, 0, len(labels))
		for l := range labels {
			names = append(names, l)
		}
		sort.Strings(names)
		got[f.GetName()] = names
		if want, ok := ownMetrics[f.GetName()]; ok && want.histogram != (f.GetType().String() == "HISTOGRAM") {
			t.Errorf("%s: type %s, table says histogram=%v", f.GetName(), f.GetType(), want.histogram)
		}
	}
	for name, want := range ownMetrics {
		if want.source != "internal/metrics" {
			continue
		}
		labels := slices.Clone(want.labels)
		sort.Strings(labels)
		if g, ok := got[name]; !ok {
			t.Errorf("%s is in the table but metrics.New does not register it", name)
		} else if !slices.Equal(g, labels) {
			t.Errorf("%s: labels %v, table says %v", name, g, labels)
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("metrics.New registers %s, missing from ownMetrics in this test", name)
	}
}

// TestControllerRuntimeMetricsRegistered: every controller-runtime name in
// the table is registered with crmetrics.Registry (what main.go serves).
// A collector with the same name but another help string cannot be
// registered next to it, which is how the test tells.
func TestControllerRuntimeMetricsRegistered(t *testing.T) {
	for name := range controllerRuntimeMetrics {
		probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe from config/prometheus"})
		err := crmetrics.Registry.Register(probe)
		if err == nil {
			crmetrics.Registry.Unregister(probe)
			t.Errorf("%s is not registered by controller-runtime: the table in this test is out of date", name)
			continue
		}
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			t.Errorf("%s: unexpected %v", name, err)
		}
	}
	// The workqueue names follow controller-runtime's exported constants.
	for _, key := range []string{crmetrics.DepthKey, crmetrics.AddsKey, crmetrics.QueueLatencyKey, crmetrics.WorkDurationKey,
		crmetrics.UnfinishedWorkKey, crmetrics.LongestRunningProcessorKey, crmetrics.RetriesKey} {
		name := crmetrics.WorkQueueSubsystem + "_" + key
		if _, ok := controllerRuntimeMetrics[name]; !ok {
			t.Errorf("%s is missing from controllerRuntimeMetrics", name)
		}
	}
}

// TestWorkqueueNamesAreTheReferences checks that the rules and the
// dashboard select the work queues by the reference attacher's queue names
// (the name label), which the attacher exports, and by nothing else.
func TestWorkqueueNamesAreTheReferences(t *testing.T) {
	known := map[string]bool{metrics.QueueVolumeAttachments: true, metrics.QueuePersistentVolumes: true}
	selectorRE := regexp.MustCompile(`workqueue_[a-z_]+\{([^{}]*)\}`)
	nameRE := regexp.MustCompile(`(?:^|[,\s])name\s*(?:=~|=)\s*"([^"]*)"`)
	for _, file := range []string{ruleFile, prometheusCRD, dashboardFile} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(raw), `\"`, `"`)
		byName := 0
		for _, sel := range selectorRE.FindAllStringSubmatch(text, -1) {
			m := nameRE.FindStringSubmatch(sel[1])
			if m == nil {
				continue
			}
			byName++
			for v := range strings.SplitSeq(m[1], "|") {
				if !known[v] {
					t.Errorf("%s: %s selects the queue name %q; the attacher's queues are %s and %s",
						file, sel[0], v, metrics.QueueVolumeAttachments, metrics.QueuePersistentVolumes)
				}
			}
		}
		if byName == 0 {
			t.Errorf("%s: no workqueue_* query selects a queue by its name label", file)
		}
	}
}
