package csi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/zapr"
	. "github.com/onsi/gomega"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// The socket of these tests belongs to socketOwner; the attacher runs as
// attacherUID, the image's former non-root user.
const (
	socketOwner = 4242
	socketGroup = 4243
	attacherUID = 65532
)

// helperEnv makes the test binary connect to the socket it names, as the
// attacher does at start, and print a helperReport on stdout. The tests run
// it as another user (syscall.Credential), so the kernel's verdict on the
// socket is real.
const helperEnv = "CSI_SOCKET_ACCESS_HELPER"

type helperReport struct {
	// DialErr is the error of a plain connect(2) to the socket.
	DialErr string `json:"dialErr"`
	// ConnectErr is csi.Connect's error; empty when it connected.
	ConnectErr string `json:"connectErr"`
	// Waiting is the last reason passed to Options.Waiting.
	Waiting string `json:"waiting"`
}

func TestMain(m *testing.M) {
	if sock := os.Getenv(helperEnv); sock != "" {
		os.Exit(connectHelper(sock))
	}
	os.Exit(m.Run())
}

// connectHelper connects to sock for at most 2.5s, logging JSON on stderr
// with the attacher's zap logger, and reports on stdout.
func connectHelper(sock string) int {
	var r helperReport
	if conn, err := net.Dial("unix", sock); err != nil {
		r.DialErr = err.Error()
	} else {
		_ = conn.Close()
	}
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(os.Stderr), zapcore.DebugLevel))
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	c, err := csi.Connect(ctx, csi.Options{
		Address: sock, ProbeTimeout: 500 * time.Millisecond, Logger: zapr.NewLogger(logger),
		Waiting: func(reason error) { r.Waiting = reason.Error() },
	})
	if err != nil {
		r.ConnectErr = err.Error()
	} else {
		_ = c.Close()
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// requireRoot skips tests that chown files and switch users.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chowns the socket and runs the attacher as other users")
	}
}

// ownedSocket serves the fake driver on a socket owned by
// socketOwner:socketGroup with mode, in a directory everyone may search.
func ownedSocket(t *testing.T, mode os.FileMode) string {
	t.Helper()
	_, sock := startDriver(t, fake.DefaultConfig(driverName))
	chownSocket(t, sock, mode)
	return sock
}

func chownSocket(t *testing.T, sock string, mode os.FileMode) {
	t.Helper()
	if err := fake.GiveSocket(sock, socketOwner, socketGroup, mode); err != nil {
		t.Fatal(err)
	}
}

// runHelper runs connectHelper as uid with gids (the first is the primary
// group) from a copy of the test binary that uid may execute.
func runHelper(t *testing.T, sock string, uid int, gids ...int) (helperReport, []map[string]any) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "csi-helper")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "helper.test")
	copyFile(t, self, bin)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{helperEnv + "=" + sock}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gids[0])}
	for _, g := range gids[1:] {
		cred.Groups = append(cred.Groups, uint32(g))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper as uid %d: %v\nstderr:\n%s", uid, err, stderr.String())
	}
	var r helperReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("helper report %q: %v", out, err)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("helper log line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, line)
	}
	return r, lines
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSocketAccessAsAnotherUser: the attacher, run by the kernel as a user
// who may not write to a root-style 0755 socket, says so at error level with
// the socket's owner and mode and its own IDs, and tells Waiting (the
// start-up /readyz) the same; as the owner, or as a member of the socket's
// group once the socket is group-writable, it connects.
func TestSocketAccessAsAnotherUser(t *testing.T) {
	requireRoot(t)
	g := NewWithT(t)
	sock := ownedSocket(t, 0o755)

	r, lines := runHelper(t, sock, attacherUID, attacherUID)
	g.Expect(r.DialErr).To(ContainSubstring("permission denied"), "the kernel refuses uid %d", attacherUID)
	g.Expect(r.ConnectErr).NotTo(BeEmpty())
	for _, text := range []string{r.Waiting, r.ConnectErr} {
		g.Expect(text).To(ContainSubstring("permission denied: the attacher (uid 65532, gids 65532) may not connect to the CSI driver socket " + sock))
		g.Expect(text).To(ContainSubstring("owned by uid 4242 gid 4243 with mode Srwxr-xr-x (0755)"))
		g.Expect(text).To(ContainSubstring("runAsUser: 4242"))
	}
	var errorLines []map[string]any
	for _, l := range lines {
		if l["level"] == "error" {
			errorLines = append(errorLines, l)
		}
		g.Expect(l["msg"]).NotTo(Equal("Waiting for the CSI driver to become ready"), "no info-level wait line: %v", l)
	}
	g.Expect(errorLines).NotTo(BeEmpty(), "an error-level line in %v", lines)
	g.Expect(errorLines[0]["msg"]).To(ContainSubstring("the socket's permissions keep the attacher out"))
	g.Expect(errorLines[0]["error"]).To(ContainSubstring("owned by uid 4242 gid 4243"))
	g.Expect(errorLines[0]["identity"]).To(Equal("uid 65532, gids 65532"))

	// The socket's owner connects.
	r, lines = runHelper(t, sock, socketOwner, socketGroup)
	g.Expect(r.DialErr).To(BeEmpty())
	g.Expect(r.ConnectErr).To(BeEmpty())
	for _, l := range lines {
		g.Expect(l["level"]).NotTo(Equal("error"), "%v", l)
	}

	// Group-writable, and the attacher has the socket's group as a
	// supplementary group: it connects too.
	chownSocket(t, sock, 0o775)
	r, _ = runHelper(t, sock, attacherUID, attacherUID, socketGroup)
	g.Expect(r.DialErr).To(BeEmpty())
	g.Expect(r.ConnectErr).To(BeEmpty())
}

// TestCheckSocketAccess judges a real socket for explicit identities.
func TestCheckSocketAccess(t *testing.T) {
	requireRoot(t)
	sock := ownedSocket(t, 0o755)
	for _, tc := range []struct {
		name   string
		mode   os.FileMode
		id     csi.Identity
		denied bool
	}{
		{"other user, 0755", 0o755, csi.Identity{UID: attacherUID, GIDs: []int{attacherUID}}, true},
		{"owner, 0755", 0o755, csi.Identity{UID: socketOwner, GIDs: []int{attacherUID}}, false},
		{"root without CAP_DAC_OVERRIDE, not the owner", 0o755, csi.Identity{UID: 0, GIDs: []int{0}}, true},
		{"root with CAP_DAC_OVERRIDE", 0o755, csi.Identity{UID: 0, GIDs: []int{0}, DACOverride: true}, false},
		{"socket's group, 0755", 0o755, csi.Identity{UID: attacherUID, GIDs: []int{attacherUID, socketGroup}}, true},
		{"socket's group, 0775", 0o775, csi.Identity{UID: attacherUID, GIDs: []int{attacherUID, socketGroup}}, false},
		{"other user, 0777", 0o777, csi.Identity{UID: attacherUID, GIDs: []int{attacherUID}}, false},
		// The owner's own bits apply to the owner, even when others may write.
		{"owner, 0577", 0o577, csi.Identity{UID: socketOwner, GIDs: []int{socketGroup}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			chownSocket(t, sock, tc.mode)
			err := csi.CheckSocketAccess(sock, tc.id)
			if !tc.denied {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			var denied *csi.SocketAccessError
			g.Expect(errors.As(err, &denied)).To(BeTrue(), "%v", err)
			g.Expect(denied.OwnerUID).To(Equal(socketOwner))
			g.Expect(denied.OwnerGID).To(Equal(socketGroup))
			g.Expect(denied.Mode.Perm()).To(Equal(tc.mode))
			g.Expect(denied.IsDir).To(BeFalse())
			g.Expect(err.Error()).To(ContainSubstring("uid " + strconv.Itoa(tc.id.UID)))
		})
	}

	t.Run("directory not searchable", func(t *testing.T) {
		g := NewWithT(t)
		chownSocket(t, sock, 0o777)
		dir := filepath.Dir(sock)
		g.Expect(os.Chmod(dir, 0o700)).To(Succeed())
		defer func() { _ = os.Chmod(dir, 0o755) }()
		err := csi.CheckSocketAccess(sock, csi.Identity{UID: attacherUID, GIDs: []int{attacherUID}})
		var denied *csi.SocketAccessError
		g.Expect(errors.As(err, &denied)).To(BeTrue(), "%v", err)
		g.Expect(denied.IsDir).To(BeTrue())
		g.Expect(denied.Path).To(Equal(dir))
		g.Expect(err.Error()).To(ContainSubstring("search (x) permission"))
	})

	t.Run("no socket yet", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(csi.CheckSocketAccess(filepath.Join(filepath.Dir(sock), "none.sock"),
			csi.Identity{UID: attacherUID, GIDs: []int{attacherUID}})).To(Succeed())
	})
}

// TestHealthMonitorReportsSocketAccess: a driver that comes back with a
// socket the attacher may not open turns /readyz false with that reason and
// logs it at error level.
func TestHealthMonitorReportsSocketAccess(t *testing.T) {
	requireRoot(t)
	g := NewWithT(t)
	core, observed := observer.New(zapcore.DebugLevel)
	drv, sock := startDriver(t, fake.DefaultConfig(driverName))
	g.Expect(os.Chmod(filepath.Dir(sock), 0o755)).To(Succeed())
	c, err := csi.Connect(testCtx(t), csi.Options{Address: sock, ProbeTimeout: 300 * time.Millisecond,
		Logger: zapr.NewLogger(zap.New(core))})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.HealthMonitor(50 * time.Millisecond).Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	g.Eventually(func() error { return c.ReadyzCheck(nil) }).Should(Succeed())

	// From now on the attacher is uid 65532 without capabilities (this
	// test runs as root, which could open anything).
	saved := csi.CurrentIdentity
	csi.CurrentIdentity = func() csi.Identity { return csi.Identity{UID: attacherUID, GIDs: []int{attacherUID}} }
	t.Cleanup(func() { csi.CurrentIdentity = saved })

	// The driver restarts as another user: a real socket file, root-style
	// 0755 and owned by that user, that nobody serves any more.
	drv.Stop()
	lis, err := net.Listen("unix", sock)
	g.Expect(err).NotTo(HaveOccurred())
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	g.Expect(lis.Close()).To(Succeed())
	t.Cleanup(func() { _ = os.Remove(sock) })
	chownSocket(t, sock, 0o755)

	g.Eventually(func() error { return c.ReadyzCheck(nil) }).WithTimeout(5 * time.Second).Should(
		MatchError(ContainSubstring("permission denied: the attacher (uid 65532, gids 65532) may not connect")))
	g.Expect(c.ReadyzCheck(nil).Error()).To(ContainSubstring("owned by uid 4242 gid 4243 with mode Srwxr-xr-x (0755)"))
	errorLogs := observed.FilterLevelExact(zapcore.ErrorLevel).All()
	g.Expect(errorLogs).To(HaveLen(1), "logged once, when it starts")
	g.Expect(errorLogs[0].Message).To(ContainSubstring("the socket's permissions keep the attacher out"))
}
