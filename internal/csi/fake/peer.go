package fake

import (
	"context"
	"net"
	"strconv"
	"syscall"

	"google.golang.org/grpc/peer"
)

// callerListener tags every connection with the process ID of the client
// at its other end (SO_PEERCRED), so each call records which process made
// it: tests that run several attachers against one driver tell their calls
// apart by it.
type callerListener struct{ net.Listener }

func (l callerListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return conn, nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return conn, nil
	}
	pid := 0
	_ = raw.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return callerConn{Conn: conn, pid: pid}, nil
}

// callerConn is a connection whose remote address is its client's process.
type callerConn struct {
	net.Conn
	pid int
}

func (c callerConn) RemoteAddr() net.Addr { return callerAddr(c.pid) }

// callerAddr is the address gRPC reports for a call's peer: the client's
// process ID.
type callerAddr int

func (a callerAddr) Network() string { return "unix" }
func (a callerAddr) String() string  { return "pid:" + strconv.Itoa(int(a)) }

// callerOf returns the process ID of a call's client, 0 when unknown.
func callerOf(ctx context.Context) int {
	if p, ok := peer.FromContext(ctx); ok {
		if a, ok := p.Addr.(callerAddr); ok {
			return int(a)
		}
	}
	return 0
}
