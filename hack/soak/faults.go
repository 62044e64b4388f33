package main

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/csi-attacher/csi-attacher/internal/csi/fake"
)

func (s *soak) injectFaults(ctx context.Context) {
	rng := rand.New(rand.NewPCG(s.cfg.seed, 1<<32))
	tick := time.NewTicker(s.cfg.faultInterval)
	defer tick.Stop()
	restart := time.NewTicker(s.cfg.restartEvery)
	defer restart.Stop()
	var spikes sync.WaitGroup
	defer spikes.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-restart.C:
			s.driver.Stop()
			s.restarts.Add(1)
			logf("driver stopped (restart %d)", s.restarts.Load())
			time.Sleep(time.Second)
			if err := s.driver.Start(s.socket); err != nil {
				logf("warning: restarting the driver: %v", err)
			}
		case <-tick.C:
			method := fake.MethodPublish
			if rng.IntN(2) == 0 {
				method = fake.MethodUnpublish
			}
			vol := handle(rng.IntN(s.cfg.n))
			switch p := rng.IntN(100); {
			case p < 60:
				s.driver.InjectError(method, vol, codes.Code(1+rng.IntN(16)), 1+rng.IntN(3))
				s.faults.Add(1)
			case p < 80:
				s.driver.InjectErrorAfter(method, vol, codes.Code(1+rng.IntN(16)), 1+rng.IntN(3))
				s.faults.Add(1)
			default:
				d := time.Duration(rng.Int64N(int64(3 * time.Second)))
				s.driver.SetLatency(method, vol, d)
				s.spikes.Add(1)
				s.faults.Add(1)
				spikes.Go(func() {
					time.Sleep(5 * time.Second)
					s.driver.SetLatency(method, vol, 0)
				})
			}
		}
	}
}
