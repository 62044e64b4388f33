package csi

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	. "github.com/onsi/gomega"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct {
		name     string
		msg      proto.Message
		want     map[string]any
		wantText string
	}{
		{
			name: "publish request",
			msg: &csipb.ControllerPublishVolumeRequest{
				VolumeId: "vol", NodeId: "node", Readonly: true,
				Secrets:       map[string]string{"password": "hunter2"},
				VolumeContext: map[string]string{"k": "v"},
				VolumeCapability: &csipb.VolumeCapability{
					AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{FsType: "ext4", MountFlags: []string{"ro", "noatime"}}},
					AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
				},
			},
			want: map[string]any{
				"volume_id": "vol", "node_id": "node", "readonly": true,
				"secrets":        StrippedValue,
				"volume_context": map[string]any{"k": "v"},
				"volume_capability": map[string]any{
					"mount":       map[string]any{"fs_type": "ext4", "mount_flags": []any{"ro", "noatime"}},
					"access_mode": map[string]any{"mode": "MULTI_NODE_READER_ONLY"},
				},
			},
		},
		{
			name: "unpublish request",
			msg:  &csipb.ControllerUnpublishVolumeRequest{VolumeId: "vol", Secrets: map[string]string{"token": "hunter2"}},
			want: map[string]any{"volume_id": "vol", "secrets": StrippedValue},
		},
		{
			name: "snapshot request",
			msg:  &csipb.CreateSnapshotRequest{Name: "snap", Secrets: map[string]string{"a": "hunter2"}},
			want: map[string]any{"name": "snap", "secrets": StrippedValue},
		},
		{
			name: "probe response",
			msg:  &csipb.ProbeResponse{Ready: wrapperspb.Bool(true)},
			want: map[string]any{"ready": map[string]any{"value": true}},
		},
		{name: "empty", msg: &csipb.ProbeRequest{}, want: map[string]any{}},
		{name: "nil interface", msg: nil, wantText: "null"},
		{name: "typed nil", msg: (*csipb.ProbeRequest)(nil), wantText: "null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			out := Sanitize(tc.msg)
			g.Expect(out).NotTo(ContainSubstring("hunter2"))
			if tc.wantText != "" {
				g.Expect(out).To(Equal(tc.wantText))
				return
			}
			var got map[string]any
			g.Expect(json.Unmarshal([]byte(out), &got)).To(Succeed(), out)
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

// Lists of messages, scalars and unset fields render as JSON, sorted by key.
func TestSanitizeListsOfMessages(t *testing.T) {
	g := NewWithT(t)
	resp := &csipb.ListVolumesResponse{Entries: []*csipb.ListVolumesResponse_Entry{
		{Volume: &csipb.Volume{VolumeId: "a", CapacityBytes: 5}, Status: &csipb.ListVolumesResponse_VolumeStatus{PublishedNodeIds: []string{"n"}}},
	}, NextToken: "1"}
	g.Expect(Sanitize(resp)).To(Equal(`{"entries":[{"status":{"published_node_ids":["n"]},"volume":{"capacity_bytes":5,"volume_id":"a"}}],"next_token":"1"}`))
}

func TestSanitizeNonFinite(t *testing.T) {
	g := NewWithT(t)
	out := Sanitize(wrapperspb.Double(math.Inf(1)))
	g.Expect(out).To(Equal(`{"value":"+Inf"}`))
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 0, "hello"},
		{"hello", -1, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel...[truncated, 5 bytes in total]"},
		{"héllo", 2, "h...[truncated, 6 bytes in total]"}, // never split é
	} {
		g := NewWithT(t)
		got := truncate(tc.in, tc.n)
		g.Expect(got).To(Equal(tc.want))
		g.Expect(strings.ToValidUTF8(got, "?")).To(Equal(got))
	}
}

// CSI has no nested secret field today, but the walker must find one at
// any depth: build a message type at run time whose secrets sit inside a
// sub-message, a list of sub-messages and a map of sub-messages.
func TestSanitizeNestedSecrets(t *testing.T) {
	g := NewWithT(t)
	secretOpt := &descriptorpb.FieldOptions{}
	proto.SetExtension(secretOpt, csipb.E_CsiSecret, true)
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("nested_test.proto"),
		Package: proto.String("nestedtest"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Inner"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("user"), Number: proto.Int32(1), Type: str, Label: opt, JsonName: proto.String("user")},
				{Name: proto.String("password"), Number: proto.Int32(2), Type: str, Label: opt, JsonName: proto.String("password"), Options: secretOpt},
			}},
			{Name: proto.String("Outer"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("one"), Number: proto.Int32(1), Type: msg, Label: opt, TypeName: proto.String(".nestedtest.Inner"), JsonName: proto.String("one")},
				{Name: proto.String("many"), Number: proto.Int32(2), Type: msg, Label: rep, TypeName: proto.String(".nestedtest.Inner"), JsonName: proto.String("many")},
				{Name: proto.String("byname"), Number: proto.Int32(3), Type: msg, Label: rep, TypeName: proto.String(".nestedtest.Outer.BynameEntry"), JsonName: proto.String("byname")},
			}, NestedType: []*descriptorpb.DescriptorProto{
				{Name: proto.String("BynameEntry"), Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}, Field: []*descriptorpb.FieldDescriptorProto{
					{Name: proto.String("key"), Number: proto.Int32(1), Type: str, Label: opt, JsonName: proto.String("key")},
					{Name: proto.String("value"), Number: proto.Int32(2), Type: msg, Label: opt, TypeName: proto.String(".nestedtest.Inner"), JsonName: proto.String("value")},
				}},
			}},
		},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	g.Expect(err).NotTo(HaveOccurred())
	innerDesc := fd.Messages().ByName("Inner")
	outerDesc := fd.Messages().ByName("Outer")
	inner := func(user string) protoreflect.Message {
		m := dynamicpb.NewMessage(innerDesc)
		m.Set(innerDesc.Fields().ByName("user"), protoreflect.ValueOfString(user))
		m.Set(innerDesc.Fields().ByName("password"), protoreflect.ValueOfString("hunter2"))
		return m
	}
	outer := dynamicpb.NewMessage(outerDesc)
	outer.Set(outerDesc.Fields().ByName("one"), protoreflect.ValueOfMessage(inner("a")))
	list := outer.Mutable(outerDesc.Fields().ByName("many")).List()
	list.Append(protoreflect.ValueOfMessage(inner("b")))
	list.Append(protoreflect.ValueOfMessage(inner("c")))
	mp := outer.Mutable(outerDesc.Fields().ByName("byname")).Map()
	mp.Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfMessage(inner("d")))

	out := Sanitize(outer)
	g.Expect(out).NotTo(ContainSubstring("hunter2"))
	g.Expect(out).To(Equal(`{"byname":{"k":{"password":"***stripped***","user":"d"}},` +
		`"many":[{"password":"***stripped***","user":"b"},{"password":"***stripped***","user":"c"}],` +
		`"one":{"password":"***stripped***","user":"a"}}`))
}
