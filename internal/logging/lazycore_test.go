package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	. "github.com/onsi/gomega"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// zapLogger is New with zap's own core in place of lazyCore (and
// without the trace filter): what lazyCore must write the same as.
func zapLogger(format string, w *bytes.Buffer) logr.Logger {
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	encCfg.EncodeLevel = levelEncoder
	enc := zapcore.NewConsoleEncoder(encCfg)
	if format == FormatJSON {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	core := zapcore.NewCore(enc, zapcore.AddSync(w), zapcore.Level(-10))
	return zapr.NewLoggerWithOptions(zap.New(core, zap.AddStacktrace(zapcore.DPanicLevel)), zapr.LogInfoLevel("v"))
}

type mutable struct{ N int }

type stringer struct{ s string }

func (s *stringer) String() string { return s.s }

// writeAll logs the same things through log: every kind of value the
// attacher and its libraries pass, values derived in several steps, values
// that must be encoded when given (a pointer changed afterwards) and one
// after such a value.
func writeAll(log logr.Logger) {
	m := &mutable{N: 1}
	s := &stringer{s: "before"}
	l := log.WithName("va").WithValues("controller", "volumeattachment", "n", 3, "ok", true)
	l = l.WithValues("VolumeAttachment", klog.KRef("", "va-1"), "Secret", klog.KRef("ns", "s-1"))
	l = l.WithValues("reconcileID", types.UID("0b7c3c6e-4c1e-4d6a-9f51-000000000001"), "timeout", time.Second)
	l.V(4).Info("Publishing volume", "volumeHandle", "vol-1", "Node", klog.KRef("", "node-1"), "nodeName", types.NodeName("node-1"))
	eager := l.WithValues("object", m, "stringer", s, "err", errors.New("boom"), "after", klog.KRef("", "x"))
	m.N, s.s = 2, "after"
	eager.WithValues("last", "v").Info("Eager values", "line", klog.KObj(&metaObject{name: "o", namespace: "ns"}))
	l.Error(errors.New("rpc failed"), "Attach failed", "PersistentVolume", klog.KRef("", "pv-1"))
	l.V(2).Info("Attached volume")
}

type metaObject struct{ name, namespace string }

func (o *metaObject) GetName() string      { return o.name }
func (o *metaObject) GetNamespace() string { return o.namespace }

var timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})`)

func TestLazyCoreWritesWhatZapWrites(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	var want, got bytes.Buffer
	writeAll(zapLogger(FormatJSON, &want))
	log, err := New(Config{Verbosity: 10, Format: FormatJSON}, &got)
	g.Expect(err).NotTo(HaveOccurred())
	writeAll(log)
	g.Expect(got.String()).To(ContainSubstring(`"object":{"N":1},"stringer":"before"`), "values that may change are encoded when given")
	g.Expect(timestamp.ReplaceAllString(got.String(), "T")).To(Equal(timestamp.ReplaceAllString(want.String(), "T")))
}

// The text format writes the values as JSON too; lazyCore's objects are
// spaced like the rest of the line where zap copied encoding/json's
// compact output, so the lines are compared as data.
func TestLazyCoreTextWritesWhatZapWrites(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	var want, got bytes.Buffer
	writeAll(zapLogger(FormatText, &want))
	log, err := New(Config{Verbosity: 10, Format: FormatText}, &got)
	g.Expect(err).NotTo(HaveOccurred())
	writeAll(log)
	wantLines, gotLines := textLines(g, &want), textLines(g, &got)
	g.Expect(gotLines).To(HaveLen(len(wantLines)))
	for i := range wantLines {
		g.Expect(gotLines[i]).To(Equal(wantLines[i]), "line %d", i)
	}
}

// textLine is a line of the text format: tab-separated fields, the last
// one the values as JSON. (The order of the keys is the JSON format's,
// checked exactly above.)
type textLine struct {
	head   []string
	values map[string]any
}

func textLines(g Gomega, buf *bytes.Buffer) []textLine {
	var out []textLine
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		head, values, _ := strings.Cut(line, "\t{")
		values = "{" + values
		l := textLine{head: strings.Split(timestamp.ReplaceAllString(head, "T"), "\t")}
		g.Expect(json.Unmarshal([]byte(values), &l.values)).To(Succeed(), line)
		out = append(out, l)
	}
	return out
}

// Concurrent loggers derived from one logger must not share the values
// they add (run with -race).
func TestLazyCoreDerivedLoggersDoNotShareValues(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	var buf bytes.Buffer
	log, err := New(Config{Verbosity: 5, Format: FormatJSON}, &buf)
	g.Expect(err).NotTo(HaveOccurred())
	base := log.WithValues("a", 1, "b", 2)
	done := make(chan struct{})
	for i := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			l := base.WithValues("worker", i)
			for range 50 {
				l.WithValues("step", "x").Info("line", "worker2", i)
			}
		}()
	}
	for range 4 {
		<-done
	}
	for _, l := range jsonLines(g, &buf) {
		g.Expect(l["worker"]).To(Equal(l["worker2"]))
	}
}
