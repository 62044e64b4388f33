package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const (
	// requestMetric is the API server's counter of handled requests.
	requestMetric = "apiserver_request_total"
	// terminatedWatchersMetric counts the watchers the API server closed
	// because they did not keep up with the events.
	terminatedWatchersMetric = "apiserver_terminated_watchers_total"
)

// backgroundResources are written on a timer, not per operation: Leases
// (the attacher's leader election and the API server's own heartbeats).
var backgroundResources = map[string]bool{"leases": true}

var (
	writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "DELETECOLLECTION": true, "APPLY": true}
	readVerbs  = map[string]bool{"GET": true, "LIST": true, "WATCH": true, "WATCHLIST": true}
)

// reqKey selects the labels of apiserver_request_total that matter here;
// the counter is summed over the others (group, version, scope, component...).
type reqKey struct {
	verb, resource, subresource, code string
}

// kind names a request as in the report: "PATCH volumeattachments/status".
func (k reqKey) kind() string {
	s := k.verb + " " + k.resource
	if k.subresource != "" {
		s += "/" + k.subresource
	}
	return s
}

// apiCounts is one scrape of apiserver_request_total, plus
// apiserver_terminated_watchers_total as WATCH requests with code
// "terminated".
type apiCounts map[reqKey]float64

const terminatedCode = "terminated"

// scrapeAPIServer reads apiserver_request_total from the API server's /metrics.
func scrapeAPIServer(ctx context.Context, client *http.Client, host string) (apiCounts, error) {
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(host, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET /metrics: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing /metrics: %w", err)
	}
	fam, ok := families[requestMetric]
	if !ok {
		return nil, fmt.Errorf("no %s in /metrics", requestMetric)
	}
	counts := apiCounts{}
	for _, m := range fam.GetMetric() {
		var k reqKey
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "verb":
				k.verb = l.GetValue()
			case "resource":
				k.resource = l.GetValue()
			case "subresource":
				k.subresource = l.GetValue()
			case "code":
				k.code = l.GetValue()
			}
		}
		counts[k] += m.GetCounter().GetValue()
	}
	for _, m := range families[terminatedWatchersMetric].GetMetric() {
		k := reqKey{verb: "WATCH", code: terminatedCode}
		for _, l := range m.GetLabel() {
			if l.GetName() == "resource" {
				k.resource = l.GetValue()
			}
		}
		counts[k] += m.GetCounter().GetValue()
	}
	return counts, nil
}

// requestDelta is what happened between two scrapes, by request kind.
type requestDelta struct {
	writes     map[string]int // the attacher's writes: all writes minus ours, minus background
	failed     map[string]int // those of them answered with an error code
	background map[string]int // writes of backgroundResources
	reads      map[string]int // GET, LIST, WATCH of resources
	terminated map[string]int // watchers closed by the API server, by resource
	warnings   []string
}

// diffRequests subtracts two scrapes and then the benchmark's own requests
// (own and ownFailed, by kind) from the writes.
func diffRequests(before, after apiCounts, own, ownFailed map[string]int) requestDelta {
	total := map[string]float64{}
	failed := map[string]float64{}
	reads := map[string]float64{}
	resourceOf := map[string]string{}
	var d requestDelta
	for k, v := range after {
		diff := v - before[k]
		if diff <= 0 || k.resource == "" { // non-resource requests: /metrics, /healthz...
			continue
		}
		if k.code == terminatedCode {
			if d.terminated == nil {
				d.terminated = map[string]int{}
			}
			d.terminated[k.resource] += int(math.Round(diff))
			continue
		}
		kind := k.kind()
		resourceOf[kind] = k.resource
		switch {
		case writeVerbs[k.verb]:
			total[kind] += diff
			if code, err := strconv.Atoi(k.code); err == nil && code >= 400 {
				failed[kind] += diff
			}
		case readVerbs[k.verb]:
			reads[kind] += diff
		}
	}
	for kind, n := range own {
		total[kind] -= float64(n)
		if total[kind] < 0 {
			d.warnings = append(d.warnings, fmt.Sprintf("the API server counted fewer %s than the benchmark sent (%d)", kind, n))
			total[kind] = 0
		}
	}
	for kind, n := range ownFailed {
		failed[kind] = math.Max(0, failed[kind]-float64(n))
	}
	d.writes, d.background = map[string]int{}, map[string]int{}
	for kind, v := range total {
		n := int(math.Round(v))
		switch {
		case n == 0:
		case backgroundResources[resourceOf[kind]]:
			d.background[kind] = n
		default:
			d.writes[kind] = n
		}
	}
	for _, res := range slices.Sorted(maps.Keys(d.terminated)) {
		d.warnings = append(d.warnings, fmt.Sprintf("the API server closed %d %s watchers that did not keep up (apiserver_terminated_watchers_total)", d.terminated[res], res))
	}
	d.failed = roundCounts(failed, func(kind string) bool { return !backgroundResources[resourceOf[kind]] })
	d.reads = roundCounts(reads, func(string) bool { return true })
	return d
}

func roundCounts(m map[string]float64, keep func(string) bool) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if n := int(math.Round(v)); n != 0 && keep(k) {
			out[k] = n
		}
	}
	return out
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// subtractCounts returns a-b without the zero entries.
func subtractCounts(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// heapCounts are the attacher's allocation totals from its Go runtime
// metrics. Unlike CPU seconds they do not depend on how busy the machine
// is, so they compare runs on a shared machine.
type heapCounts struct {
	bytes, objects float64
	ok             bool
}

// Names of the Go collector's allocation totals.
const (
	allocBytesMetric = "go_memstats_alloc_bytes_total"
	mallocsMetric    = "go_memstats_mallocs_total"
)

// scrapeHeap reads the allocation totals from the attacher's /metrics; a
// failure (metrics off or moved by its flags) leaves ok false.
func scrapeHeap(ctx context.Context, url string) heapCounts {
	if url == "" {
		return heapCounts{}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return heapCounts{}
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return heapCounts{}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return heapCounts{}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return heapCounts{}
	}
	value := func(name string) (float64, bool) {
		fam, ok := families[name]
		if !ok || len(fam.GetMetric()) == 0 {
			return 0, false
		}
		return fam.GetMetric()[0].GetCounter().GetValue(), true
	}
	bytes, ok1 := value(allocBytesMetric)
	objects, ok2 := value(mallocsMetric)
	return heapCounts{bytes: bytes, objects: objects, ok: ok1 && ok2}
}
