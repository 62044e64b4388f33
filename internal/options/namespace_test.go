package options

import (
	"io/fs"
	"testing"

	. "github.com/onsi/gomega"
)

// LeaderElectionNamespaceOrDefault returns the namespace of the
// leader-election Lease as resolved by Parse. For Options built by hand it
// falls back to the flag value, then "default". The attacher reads
// LeaderElectionNamespaceResolved; only the tests need the fallbacks.
func (o *Options) LeaderElectionNamespaceOrDefault() string {
	switch {
	case o.LeaderElectionNamespaceResolved != "":
		return o.LeaderElectionNamespaceResolved
	case o.LeaderElectionNamespace != "":
		return o.LeaderElectionNamespace
	default:
		return DefaultLeaderElectionNamespace
	}
}

func TestLeaderElectionNamespaceResolution(t *testing.T) {
	t.Parallel()
	const saFile = ServiceAccountNamespaceFile
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		files map[string]string
		want  string
	}{
		{name: "flag first", args: []string{"--leader-election-namespace=from-flag"},
			env: map[string]string{EnvPodNamespace: "from-env"}, files: map[string]string{saFile: "from-file"}, want: "from-flag"},
		{name: "then POD_NAMESPACE", env: map[string]string{EnvPodNamespace: "from-env"},
			files: map[string]string{saFile: "from-file"}, want: "from-env"},
		{name: "then the service-account file, trimmed", files: map[string]string{saFile: " from-file\n"}, want: "from-file"},
		{name: "blank POD_NAMESPACE falls through", env: map[string]string{EnvPodNamespace: "  "},
			files: map[string]string{saFile: "from-file"}, want: "from-file"},
		{name: "empty file falls through", files: map[string]string{saFile: "\n"}, want: "default"},
		{name: "then default", want: "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			o, err := Parse(append([]string{csiFlag}, tt.args...), envOf(tt.env), filesOf(tt.files))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(o.LeaderElectionNamespaceResolved).To(Equal(tt.want))
			g.Expect(o.LeaderElectionNamespaceOrDefault()).To(Equal(tt.want))
		})
	}

	t.Run("invalid namespace in the file", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		_, err := Parse([]string{csiFlag}, nil, filesOf(map[string]string{saFile: "Bad_NS"}))
		g.Expect(err).To(MatchError(ContainSubstring(saFile)))
	})
	t.Run("read errors other than not-exist fall through too", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		o, err := Parse([]string{csiFlag}, nil, func(string) ([]byte, error) { return nil, fs.ErrPermission })
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(o.LeaderElectionNamespaceResolved).To(Equal("default"))
	})
}
