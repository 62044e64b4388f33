package logging

import (
	"testing"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
)

// levelNames records what levelEncoder appends.
type levelNames struct {
	zapcore.PrimitiveArrayEncoder
	got []string
}

func (e *levelNames) AppendString(s string) { e.got = append(e.got, s) }

// TestLevelEncoder: logr V(n) arrives as zap level -n and is named "info"
// (the "v" field carries n); zap's own levels keep their names.
func TestLevelEncoder(t *testing.T) {
	g := NewWithT(t)
	for level, want := range map[zapcore.Level]string{
		zapcore.Level(-10):  "info",
		zapcore.Level(-5):   "info",
		zapcore.Level(-1):   "info",
		zapcore.InfoLevel:   "info",
		zapcore.WarnLevel:   "warn",
		zapcore.ErrorLevel:  "error",
		zapcore.DPanicLevel: "dpanic",
	} {
		e := &levelNames{}
		levelEncoder(level, e)
		g.Expect(e.got).To(Equal([]string{want}), "zap level %d", level)
	}
}
