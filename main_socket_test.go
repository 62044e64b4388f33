package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// TestCommandReportsSocketAccess runs csi-attacher as uid 65532 next to a
// driver whose socket is root-style 0755 and owned by another user, as with
// a driver running as root. While it waits, /healthz is ok (restarting would
// not help), /readyz fails with the socket's owner and mode and the
// attacher's IDs, and the log says the same at error level.
func TestCommandReportsSocketAccess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chowns the socket and runs the attacher as another user")
	}
	g := NewWithT(t)
	dir, err := os.MkdirTemp("", "attacher")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "csi.sock")
	driver := fake.New(fake.DefaultConfig("socket.csi.example.com"))
	g.Expect(driver.Start(sock)).To(Succeed())
	t.Cleanup(driver.Stop)
	g.Expect(fake.GiveSocket(sock, 4242, 4242, 0o755)).To(Succeed())

	// The API server is never reached: the attacher waits for the driver first.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	g.Expect(os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o644)).To(Succeed())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	probeAddr := lis.Addr().String()
	g.Expect(lis.Close()).To(Succeed())

	// A copy of the test binary that uid 65532 may execute.
	bin := filepath.Join(dir, "csi-attacher.test")
	in, err := os.Open(os.Args[0])
	g.Expect(err).NotTo(HaveOccurred())
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = io.Copy(out, in)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out.Close()).To(Succeed())
	_ = in.Close()

	cmd := exec.Command(bin, "--csi-address="+sock, "--kubeconfig="+kubeconfig, "--leader-election=false",
		"--metrics-addr=0", "--health-probe-bind-address="+probeAddr, "--logging-format=json")
	cmd.Env = []string{runMainEnv + "=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	g.Expect(cmd.Start()).To(Succeed())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Logf("csi-attacher output:\n%s", logs.String())
	})

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + probeAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	denied := "permission denied: the attacher (uid 65532, gids 65532) may not connect to the CSI driver socket " + sock +
		": the socket is owned by uid 4242 gid 4242 with mode Srwxr-xr-x (0755)"
	g.Eventually(func(g Gomega) {
		code, body := get("/readyz")
		g.Expect(code).To(Equal(http.StatusServiceUnavailable))
		g.Expect(body).To(ContainSubstring(denied))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	code, body := get("/healthz")
	g.Expect(code).To(Equal(http.StatusOK), body)

	g.Eventually(func(g Gomega) {
		var found bool
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line map[string]any
			g.Expect(json.Unmarshal(sc.Bytes(), &line)).To(Succeed(), "a JSON log line: %s", sc.Text())
			if line["level"] == "error" && strings.Contains(line["error"].(string), denied) {
				found = true
				g.Expect(line["identity"]).To(Equal("uid 65532, gids 65532"))
			}
		}
		g.Expect(found).To(BeTrue(), "an error-level line naming the cause")
	}).Should(Succeed())
}
