package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// startAttacher starts the attacher and waits for its /readyz.
func (s *soak) startAttacher(ctx context.Context, bin, kubeconfig string) (*testbed.Attacher, error) {
	endpoints, err := testbed.FreeEndpoints()
	if err != nil {
		return nil, err
	}
	s.metricsURL = endpoints.MetricsURL()
	s.log = filepath.Join(s.tmp, "attacher.log")
	logFile, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	args := slices.Concat([]string{
		"--csi-address=" + s.socket,
		"--kubeconfig=" + kubeconfig,
	}, endpoints.Flags(), []string{
		"--leader-election=false",
		"--timeout=2s",
		"--retry-interval-start=100ms",
		"--retry-interval-max=2s",
		"--worker-threads=20",
		"--v=" + map[bool]string{true: "1", false: "2"}[s.cfg.churn > 0],
	})
	att, err := testbed.StartAttacher(bin, args, logFile)
	if err != nil {
		return nil, err
	}
	readyz := endpoints.ReadyzURL()
	deadline := time.Now().Add(time.Minute)
	for !testbed.Ready(readyz) {
		select {
		case <-att.Done():
			return nil, fmt.Errorf("%w: %s (log %s)", errAttacherExited, testbed.ExitStatus(att.Err()), s.log)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			att.Stop(attacherStopTimeout)
			return nil, fmt.Errorf("csi-attacher was not ready at %s (log %s)", readyz, s.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf("csi-attacher ready (log %s)", s.log)
	return att, nil
}
