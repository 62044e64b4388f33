package doctor

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// runAsEnv makes the test binary run `csi-attacher doctor` with the
// arguments of the variable (space-separated); TestDoctorSocketAccess runs
// it as another user, so the kernel judges the socket for real.
const runAsEnv = "CSI_ATTACHER_DOCTOR_HELPER_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(runAsEnv); args != "" {
		os.Exit(Run(context.Background(), strings.Fields(args), os.Getenv, os.ReadFile, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestDoctorSocketAccess: doctor, run as uid 65532 next to a driver whose
// socket is 0755 and owned by another user, fails the driver check with the
// socket's owner and mode, its own IDs and the fix.
func TestDoctorSocketAccess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chowns the socket and runs doctor as another user")
	}
	g := NewWithT(t)
	dir, err := os.MkdirTemp("", "doctor")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "csi.sock")
	driver := fake.New(fake.DefaultConfig(testDriver))
	g.Expect(driver.Start(sock)).To(Succeed())
	t.Cleanup(driver.Stop)
	g.Expect(fake.GiveSocket(sock, 4242, 4242, 0o755)).To(Succeed())

	// A copy of the test binary that uid 65532 may execute.
	self, err := os.Executable()
	g.Expect(err).NotTo(HaveOccurred())
	bin := filepath.Join(dir, "doctor.test")
	in, err := os.Open(self)
	g.Expect(err).NotTo(HaveOccurred())
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = io.Copy(out, in)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out.Close()).To(Succeed())
	_ = in.Close()

	cmd := exec.Command(bin)
	cmd.Env = []string{"CSI_PROBE_TIMEOUT=500ms",
		runAsEnv + "=--csi-address=" + sock + " --kubeconfig=" + filepath.Join(dir, "no-kubeconfig") + " --leader-election=false"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
	output, err := cmd.CombinedOutput()
	t.Logf("%s", output)
	var exitErr *exec.ExitError
	g.Expect(err).To(BeAssignableToTypeOf(exitErr))
	g.Expect(err.(*exec.ExitError).ExitCode()).To(Equal(ExitFailed))
	g.Expect(lines(string(output))).To(ContainElement(
		"FAIL driver: cannot connect to the CSI driver at unix://" + sock + ": permission denied: the attacher " +
			"(uid 65532, gids 65532) may not connect to the CSI driver socket " + sock + ": the socket is owned by " +
			"uid 4242 gid 4242 with mode Srwxr-xr-x (0755), and connecting needs write permission on it. Fix: run the " +
			"attacher as the socket's owner (securityContext.runAsUser: 4242; uid 0 is the image's default), or have the " +
			"driver make the socket group-writable (mode 0660 or 0770) for a group the attacher runs with " +
			"(securityContext.runAsGroup or supplementalGroups: 4242)"))
}
