package csi

import (
	"context"
	"io"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/csi-attacher/csi-attacher/internal/logging"
)

// BenchmarkLogInterceptor is the logging's share of one ControllerPublish
// call: nothing at the default --v=5 when the call succeeds, the error line
// when it fails, and both bodies from --v=6.
func BenchmarkLogInterceptor(b *testing.B) {
	req := &csipb.ControllerPublishVolumeRequest{
		VolumeId: "bench-vol-1", NodeId: "bench-node-id", Readonly: false,
		Secrets:       map[string]string{"password": "hunter2"},
		VolumeContext: map[string]string{"storage.kubernetes.io/csiProvisionerIdentity": "1700000000000-8081-bench.csi.example.com"},
		VolumeCapability: &csipb.VolumeCapability{
			AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{FsType: "ext4"}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
	}
	failure := status.Error(codes.Internal, "backend said no")
	for _, tc := range []struct {
		name string
		v    int
		err  error
	}{
		{"v5-ok", 5, nil},
		{"v5-error", 5, failure},
		{"v6-ok", 6, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			log, err := logging.New(logging.Config{Verbosity: tc.v}, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			intercept := logInterceptor(log.WithName("csi"), -1)
			invoker := func(_ context.Context, _ string, _, reply any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
				reply.(*csipb.ControllerPublishVolumeResponse).PublishContext = map[string]string{"devicePath": "/dev/xvdb"}
				return tc.err
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				reply := &csipb.ControllerPublishVolumeResponse{}
				_ = intercept(ctx, csipb.Controller_ControllerPublishVolume_FullMethodName, req, reply, nil, invoker)
			}
		})
	}
}
