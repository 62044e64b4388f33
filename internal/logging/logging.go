package logging

import (
	"fmt"
	"io"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
)

// Log formats: --logging-format and its alias --log-format.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// MaxVerbosity is the highest --v. Nothing in the attacher logs above it,
// and a cap keeps typos such as --v=50 from going unnoticed.
const MaxVerbosity = 10

// Config is what the process logger is built from.
type Config struct {
	// Verbosity is --v: V(n) lines are written iff n <= Verbosity.
	Verbosity int
	// Format is FormatText or FormatJSON; "" is FormatText.
	Format string
}

// New builds the process logger: zap behind logr (zapr), writing to w.
//
//   - Verbosity: logr V(n) maps to zap level -n, so the core is opened at
//     zapcore.Level(-c.Verbosity) and V(n) is written iff n <= --v. Errors
//     are always written.
//   - Format: "json" uses zap's JSON encoder, "text" its console encoder.
//     Both use ISO8601 timestamps and carry the logr level in a "v" field,
//     as the Kubernetes JSON format does.
//   - No caller annotation: it costs a runtime.Caller per line and our
//     messages are specific enough to find.
//   - Stack traces only from DPanic up, i.e. for logr misuse that zapr
//     reports (odd key/value lists) and real panics, not for every error:
//     reconcile errors are expected and a stack trace per retry is noise.
//   - No sampling: dropping repeated lines would hide the per-volume
//     decisions that --v=5 exists to show.
//   - controller-runtime's trace of every reconcile ("Reconciling",
//     "Reconcile successful", at V(5)) is shown only from --v=7: at the
//     default level it made up three quarters of the lines and said
//     nothing the per-volume decision lines do not.
//   - Values given to WithValues are encoded when a line is written, not
//     when the logger is derived (see lazyCore): controller-runtime and our
//     reconcilers derive a logger with five to eight values for every
//     reconcile, and most reconciles write no line.
//   - klog.KRef/KObj values and string types such as types.UID are encoded
//     directly rather than through encoding/json's reflection (see plain);
//     the output is the same JSON.
//
// The writer is locked, so w need not be safe for concurrent use.
func New(c Config, w io.Writer) (logr.Logger, error) {
	if c.Verbosity < 0 || c.Verbosity > MaxVerbosity {
		return logr.Discard(), fmt.Errorf("--v=%d: must be between 0 and %d", c.Verbosity, MaxVerbosity)
	}

	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	encCfg.EncodeLevel = levelEncoder

	var enc zapcore.Encoder
	switch c.Format {
	case FormatJSON:
		enc = zapcore.NewJSONEncoder(encCfg)
	case FormatText, "":
		// "" lets a Config built by hand (tests) get the default format.
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return logr.Discard(), fmt.Errorf("--logging-format=%q: must be %q or %q", c.Format, FormatText, FormatJSON)
	}

	sink := zapcore.Lock(zapcore.AddSync(w))
	core := &lazyCore{
		eager:     zapcore.NewCore(enc, sink, zapcore.Level(-c.Verbosity)),
		hideTrace: c.Verbosity < ReconcileTraceVerbosity,
	}
	zl := zap.New(core,
		zap.AddStacktrace(zapcore.DPanicLevel),
		// zap's own failures (e.g. a failed write) go to the same place
		// instead of stderr, so nothing is lost when w is a file.
		zap.ErrorOutput(sink),
	)
	return zapr.NewLoggerWithOptions(zl, zapr.LogInfoLevel("v")), nil
}

// levelEncoder names zap levels the logr way. logr has only info and error;
// its V levels arrive as negative zap levels, which zap would print as
// "Level(-5)". They are printed as "info", and the "v" field carries n.
func levelEncoder(l zapcore.Level, enc zapcore.PrimitiveArrayEncoder) {
	if l < zapcore.InfoLevel {
		enc.AppendString("info")
		return
	}
	zapcore.LowercaseLevelEncoder(l, enc)
}

// ReconcileTraceVerbosity is the --v from which controller-runtime's
// per-reconcile trace lines are written.
const ReconcileTraceVerbosity = 7

// isReconcileTrace tells the messages of controller-runtime's per-reconcile
// trace (pkg/internal/controller).
func isReconcileTrace(msg string) bool {
	return msg == "Reconciling" || msg == "Reconcile successful"
}

// RouteKlog sends what client-go and the other Kubernetes libraries log
// through klog's global logger (rejected Events, errors of code that was
// given no logger of its own; controller-runtime already hands its
// reflectors and its leader election ours) to logger, so that the output
// has one format, JSON or text, instead of klog's own text lines in the
// middle. klog keeps its own verbosity threshold (0): the libraries'
// errors and V(0) lines get through, their V(1+) chatter does not rise
// with --v.
func RouteKlog(logger logr.Logger) {
	klog.SetLogger(logger.WithName("klog"))
}
