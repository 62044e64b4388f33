package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// runMainEnv makes the test binary act as csi-attacher, so the tests below
// check the real exit codes and messages of the command.
const runMainEnv = "CSI_ATTACHER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = append([]string{"csi-attacher"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	code := m.Run()
	stopAPIServer()
	os.Exit(code)
}

func runCommand(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), runMainEnv+"=1"), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("running csi-attacher: %v", err)
	}
	return string(out), code
}

// TestVersionFromBuildFlags: the Makefile's and the Dockerfile's -ldflags
// reach --version.
func TestVersionFromBuildFlags(t *testing.T) {
	g := NewWithT(t)
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "csi-attacher")
	build := exec.Command("go", "build", "-o", bin, "-ldflags",
		"-X main.version=v9.8.7 -X main.commit=0123abc -X main.buildDate=2026-01-02T03:04:05Z", ".")
	out, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	out, err = exec.Command(bin, "--version").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(string(out)).To(MatchRegexp(`^\S*csi-attacher v9\.8\.7 \(commit 0123abc, built 2026-01-02T03:04:05Z, go1\.\S+ \S+/\S+\)\n$`))
}

func TestCommandRejectsBadConfiguration(t *testing.T) {
	tests := []struct {
		name  string
		env   []string
		args  []string
		names string
	}{
		{name: "missing csi-address", args: nil, names: "--csi-address"},
		{name: "zero workers", args: []string{"--csi-address=/tmp/x.sock", "--worker-threads=0"}, names: "--worker-threads"},
		{name: "bad timeout", args: []string{"--csi-address=/tmp/x.sock", "--timeout=soon"}, names: "timeout"},
		{name: "bad env timeout", env: []string{"CSI_ATTACHER_TIMEOUT=abc"}, args: []string{"--csi-address=/tmp/x.sock"}, names: "CSI_ATTACHER_TIMEOUT"},
		{name: "bad probe timeout", env: []string{"CSI_PROBE_TIMEOUT=-1s"}, args: []string{"--csi-address=/tmp/x.sock"}, names: "CSI_PROBE_TIMEOUT"},
		{name: "unknown flag", args: []string{"--csi-address=/tmp/x.sock", "--no-such-flag"}, names: "no-such-flag"},
		{name: "both metrics flags", args: []string{"--csi-address=/tmp/x.sock", "--http-endpoint=:9000", "--metrics-address=:9001"}, names: "--metrics-address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			out, code := runCommand(t, tc.env, tc.args...)
			g.Expect(code).To(Equal(2), out)
			g.Expect(out).To(ContainSubstring(tc.names))
			g.Expect(out).NotTo(ContainSubstring("panic"))
		})
	}
}

func TestCommandVersionAndHelp(t *testing.T) {
	g := NewWithT(t)
	out, code := runCommand(t, nil, "--version")
	g.Expect(code).To(Equal(0))
	g.Expect(strings.TrimSpace(out)).To(MatchRegexp(`^csi-attacher ` + regexp.QuoteMeta(version) +
		` \(commit \S+, built \S+, go1\.\S+ [a-z0-9]+/[a-z0-9]+\)$`))

	out, code = runCommand(t, nil, "--help")
	g.Expect(code).To(Equal(0))
	for _, flag := range []string{"csi-address", "timeout", "worker-threads", "leader-election", "http-endpoint", "metrics-addr"} {
		g.Expect(out).To(ContainSubstring(flag))
	}
}
