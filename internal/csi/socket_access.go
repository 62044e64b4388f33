package csi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// capDACOverride is CAP_DAC_OVERRIDE's bit in the capability sets of
// /proc/<pid>/status: the capability that lets root open any file whatever
// its owner and mode. Containers usually drop it (capabilities: drop: [ALL]).
const capDACOverride = 1

// Identity is who the process is to the kernel when it connects to a unix
// socket: connect(2) needs write permission on the socket file and search
// permission on every directory above it.
type Identity struct {
	// UID is the effective user ID.
	UID int
	// GIDs are the effective group ID followed by the supplementary groups.
	GIDs []int
	// DACOverride is set when CAP_DAC_OVERRIDE is effective: the permission
	// bits are then not checked at all.
	DACOverride bool
}

// String renders the identity as the error messages quote it.
func (id Identity) String() string {
	gids := make([]string, len(id.GIDs))
	for i, g := range id.GIDs {
		gids[i] = strconv.Itoa(g)
	}
	s := fmt.Sprintf("uid %d, gids %s", id.UID, strings.Join(gids, ","))
	if id.UID == 0 && !id.DACOverride {
		s += ", without CAP_DAC_OVERRIDE"
	}
	return s
}

// CurrentIdentity returns the identity of this process. It is read once:
// the attacher never changes users.
var CurrentIdentity = sync.OnceValue(func() Identity {
	id := Identity{UID: os.Geteuid(), GIDs: []int{os.Getegid()}}
	if groups, err := os.Getgroups(); err == nil {
		for _, g := range groups {
			if g != id.GIDs[0] {
				id.GIDs = append(id.GIDs, g)
			}
		}
	}
	id.DACOverride = hasEffectiveCapability("/proc/self/status", capDACOverride)
	return id
})

// hasEffectiveCapability reads the CapEff line of a /proc status file. When
// it cannot be read the answer is no, which only makes the analysis stricter.
func hasEffectiveCapability(statusFile string, bit uint) bool {
	data, err := os.ReadFile(statusFile)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		hex, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		return err == nil && caps&(1<<bit) != 0
	}
	return false
}

// SocketAccessError says why the attacher may not connect to the driver's
// socket, and how to fix it. It is returned by CheckSocketAccess.
type SocketAccessError struct {
	// Path is the file that refuses access: the socket or a directory above it.
	Path string
	// Socket is the socket path the attacher dials.
	Socket string
	// IsDir is set when Path is a directory the attacher cannot search.
	IsDir bool
	// OwnerUID, OwnerGID and Mode are those of Path.
	OwnerUID, OwnerGID int
	Mode               fs.FileMode
	// Identity is the attacher's.
	Identity Identity
}

func (e *SocketAccessError) Error() string {
	if e.IsDir {
		return fmt.Sprintf("permission denied: the attacher (%s) may not connect to the CSI driver socket %s: "+
			"the directory %s is owned by uid %d gid %d with mode %s (%04o), and connecting needs search (x) "+
			"permission on every directory above the socket. Fix: make the directory searchable by the attacher "+
			"(mode 0755, or 0750 with a group the attacher runs with), or run the attacher as its owner "+
			"(securityContext.runAsUser: %d; uid 0 is the image's default)",
			e.Identity, e.Socket, e.Path, e.OwnerUID, e.OwnerGID, e.Mode, e.Mode.Perm(), e.OwnerUID)
	}
	return fmt.Sprintf("permission denied: the attacher (%s) may not connect to the CSI driver socket %s: "+
		"the socket is owned by uid %d gid %d with mode %s (%04o), and connecting needs write permission on it. "+
		"Fix: run the attacher as the socket's owner (securityContext.runAsUser: %d; uid 0 is the image's "+
		"default), or have the driver make the socket group-writable (mode 0660 or 0770) for a group the "+
		"attacher runs with (securityContext.runAsGroup or supplementalGroups: %d)",
		e.Identity, e.Socket, e.OwnerUID, e.OwnerGID, e.Mode, e.Mode.Perm(), e.OwnerUID, e.OwnerGID)
}

// CheckSocketAccess tells whether id may connect to the unix socket at path,
// by the kernel's rules: with CAP_DAC_OVERRIDE anything goes; otherwise the
// owner's bits apply to the owner, the group's bits to a member of the
// file's group, the other bits to everyone else. It returns a
// *SocketAccessError when the permission bits refuse, and nil when they
// allow it or when there is nothing to judge yet (the socket does not exist:
// the driver has not started). It never dials.
func CheckSocketAccess(path string, id Identity) error {
	if id.DACOverride {
		return nil
	}
	path = filepath.Clean(path)
	// Search permission on each directory from the root down.
	var dirs []string
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		denied, err := deniedBy(dirs[i], id, 01, true, path)
		if err != nil || denied != nil {
			return denied
		}
	}
	denied, _ := deniedBy(path, id, 02, false, path)
	return denied
}

// deniedBy checks the permission bit want (01 search, 02 write) of file for
// id. A file that cannot be examined is no verdict (nil, err).
func deniedBy(file string, id Identity, want fs.FileMode, isDir bool, socket string) (*SocketAccessError, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, errors.New("no ownership information")
	}
	owner, group := int(st.Uid), int(st.Gid)
	perm := fi.Mode().Perm()
	var bits fs.FileMode
	switch {
	case id.UID == owner:
		bits = perm >> 6
	case slices.Contains(id.GIDs, group):
		bits = perm >> 3
	default:
		bits = perm
	}
	if bits&want != 0 {
		return nil, nil
	}
	return &SocketAccessError{Path: file, Socket: socket, IsDir: isDir, OwnerUID: owner, OwnerGID: group,
		Mode: fi.Mode(), Identity: id}, nil
}
