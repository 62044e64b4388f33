package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

// recorder keeps the driver's state file and call log, for a test that
// runs the driver as a process of its own and reads what it did from
// outside. Both are optional: an empty path turns each off.
type recorder struct {
	statePath string
	state     func() fake.State

	// mu orders the writes of concurrent calls: each call's state is
	// written after the one before it, and its log line after its state.
	mu    sync.Mutex
	calls *os.File
	enc   *json.Encoder
}

func newRecorder(statePath, callsPath string, state func() fake.State) (*recorder, error) {
	r := &recorder{statePath: statePath, state: state}
	if callsPath != "" {
		f, err := os.OpenFile(callsPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--calls-file: %w", err)
		}
		r.calls, r.enc = f, json.NewEncoder(f)
	}
	return r, nil
}

// restore loads the state file into drv, if there is one.
func (r *recorder) restore(drv *fake.Driver) error {
	if r.statePath == "" {
		return nil
	}
	data, err := os.ReadFile(r.statePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--state-file: %w", err)
	}
	var s fake.State
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("--state-file %s: %w", r.statePath, err)
	}
	drv.Restore(s)
	return nil
}

// record writes the state after a publish or unpublish and logs the call.
func (r *recorder) record(c fake.Call) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.statePath != "" && (c.Method == fake.MethodPublish || c.Method == fake.MethodUnpublish) {
		if err := r.writeState(); err != nil {
			return err
		}
	}
	if r.enc == nil {
		return nil
	}
	if err := r.enc.Encode(c.Record()); err != nil {
		return fmt.Errorf("--calls-file: %w", err)
	}
	return nil
}

// writeState replaces the state file at once (write, then rename), so a
// reader or a restarted driver never sees half of it. Callers hold r.mu.
func (r *recorder) writeState() error {
	data, err := json.Marshal(r.state())
	if err != nil {
		return err
	}
	tmp := r.statePath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("--state-file: %w", err)
	}
	if err := os.Rename(tmp, r.statePath); err != nil {
		return fmt.Errorf("--state-file: %w", err)
	}
	return nil
}

func (r *recorder) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		return nil
	}
	return r.calls.Close()
}
