package options

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/csi-attacher/csi-attacher/internal/logging"
)

// TestLoggingFromParsedOptions: --v and --logging-format reach the logger.
func TestLoggingFromParsedOptions(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	o, err := Parse([]string{csiFlag, "-v", "6", "--logging-format=json"}, nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(o.Logging()).To(Equal(logging.Config{Verbosity: 6, Format: logging.FormatJSON}))
	var buf bytes.Buffer
	log, err := logging.New(o.Logging(), &buf)
	g.Expect(err).NotTo(HaveOccurred())
	log.V(6).Info("gRPC response")
	log.V(7).Info("hidden")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	g.Expect(lines).To(HaveLen(1))
	m := map[string]any{}
	g.Expect(json.Unmarshal([]byte(lines[0]), &m)).To(Succeed(), lines[0])
	g.Expect(m).To(HaveKeyWithValue("msg", "gRPC response"))
}
