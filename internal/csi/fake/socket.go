package fake

import (
	"fmt"
	"os"
	"path/filepath"
)

// GiveSocket gives the driver's socket at path to uid:gid with mode, in a
// directory anyone may search, as a driver running as that user would
// have left it (a Go driver under the usual umask creates it 0755). Tests
// run as root use it for a socket that an attacher run as another user may
// or may not open.
func GiveSocket(path string, uid, gid int, mode os.FileMode) error {
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != mode {
		return fmt.Errorf("%s: mode %s, want a socket with %04o", path, fi.Mode(), mode)
	}
	return nil
}
