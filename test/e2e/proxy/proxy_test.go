package proxy

import (
	"bufio"
	"net"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// echo serves lines back to their sender.
func echo(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return lis.Addr().String()
}

// roundTrip sends a line and returns the answer, or an error after wait.
func roundTrip(c net.Conn, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	return bufio.NewReader(c).ReadString('\n')
}

func TestProxyBlackhole(t *testing.T) {
	g := NewWithT(t)
	p, err := New(echo(t))
	g.Expect(err).NotTo(HaveOccurred())
	defer p.Close()

	old, err := net.Dial("tcp", p.Addr())
	g.Expect(err).NotTo(HaveOccurred())
	defer old.Close()
	g.Expect(roundTrip(old, time.Second)).To(Equal("ping\n"))

	p.Blackhole()
	_, err = roundTrip(old, 300*time.Millisecond)
	g.Expect(err).To(MatchError(ContainSubstring("timeout")), "nothing passes, nothing is refused")
	during, err := net.Dial("tcp", p.Addr())
	g.Expect(err).NotTo(HaveOccurred(), "new connections are accepted ...")
	defer during.Close()
	_, err = roundTrip(during, 300*time.Millisecond)
	g.Expect(err).To(MatchError(ContainSubstring("timeout")), "... and hang")

	p.Restore()
	for _, c := range []net.Conn{old, during} {
		_, err = roundTrip(c, time.Second)
		g.Expect(err).To(HaveOccurred(), "the connections of the cut are closed")
	}
	fresh, err := net.Dial("tcp", p.Addr())
	g.Expect(err).NotTo(HaveOccurred())
	defer fresh.Close()
	g.Expect(roundTrip(fresh, time.Second)).To(Equal("ping\n"))
}

func TestProxyDrop(t *testing.T) {
	g := NewWithT(t)
	p, err := New(echo(t))
	g.Expect(err).NotTo(HaveOccurred())
	defer p.Close()

	old, err := net.Dial("tcp", p.Addr())
	g.Expect(err).NotTo(HaveOccurred())
	defer old.Close()
	g.Expect(roundTrip(old, time.Second)).To(Equal("ping\n"))

	p.Drop()
	start := time.Now()
	_, err = roundTrip(old, 5*time.Second)
	g.Expect(err).To(HaveOccurred(), "the connection is closed")
	during, err := net.Dial("tcp", p.Addr())
	g.Expect(err).NotTo(HaveOccurred())
	defer during.Close()
	_, err = roundTrip(during, 5*time.Second)
	g.Expect(err).To(HaveOccurred(), "a new connection is closed at once")
	g.Expect(time.Since(start)).To(BeNumerically("<", 2*time.Second), "fails fast")

	p.Restore()
	fresh, err := net.Dial("tcp", p.Addr())
	g.Expect(err).NotTo(HaveOccurred())
	defer fresh.Close()
	g.Expect(roundTrip(fresh, time.Second)).To(Equal("ping\n"))
}
