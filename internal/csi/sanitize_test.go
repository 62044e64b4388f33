package csi

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// referenceSanitize is Sanitize as it was written first: the message turned
// into maps and lists, then encoding/json. Sanitize writes the JSON
// directly and must write the same.
func referenceSanitize(m proto.Message) string {
	if m == nil {
		return "null"
	}
	b, err := json.Marshal(refMessage(m.ProtoReflect(), 0))
	if err != nil {
		return fmt.Sprintf("<unprintable %T: %v>", m, err)
	}
	return string(b)
}

func refMessage(m protoreflect.Message, depth int) any {
	if m == nil || !m.IsValid() {
		return nil
	}
	if depth > maxSanitizeDepth {
		return "<too deep>"
	}
	out := map[string]any{}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		if fd.IsExtension() {
			name = "[" + string(fd.FullName()) + "]"
		}
		if isSecret(fd) {
			out[name] = StrippedValue
			return true
		}
		out[name] = refField(fd, v, depth)
		return true
	})
	return out
}

func refField(fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) any {
	switch {
	case fd.IsList():
		l := v.List()
		out := make([]any, l.Len())
		for i := range out {
			out[i] = refSingular(fd, l.Get(i), depth)
		}
		return out
	case fd.IsMap():
		out := map[string]any{}
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			out[k.String()] = refSingular(fd.MapValue(), mv, depth)
			return true
		})
		return out
	default:
		return refSingular(fd, v, depth)
	}
}

func refSingular(fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return refMessage(v.Message(), depth+1)
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return int32(v.Enum())
	case protoreflect.BytesKind:
		return v.Bytes()
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Sprint(f)
		}
		return f
	default:
		return v.Interface()
	}
}

// sanitizeCorpus are messages with every kind of value CSI messages hold,
// and strings and numbers that encoding/json writes in its own way.
func sanitizeCorpus() []proto.Message {
	tricky := "a<b>&c\"d\\e\n\t\r\b\f\x01\x1f é \u2028 \u2029 \xff end"
	return []proto.Message{
		nil,
		(*csipb.ProbeRequest)(nil),
		&csipb.ProbeRequest{},
		&csipb.ControllerPublishVolumeRequest{
			VolumeId: tricky, NodeId: "node", Readonly: true,
			Secrets:       map[string]string{"password": "hunter2"},
			VolumeContext: map[string]string{"z": "1", "a": tricky, "<": ">", "": "empty"},
			VolumeCapability: &csipb.VolumeCapability{
				AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{FsType: "ext4", MountFlags: []string{"ro", "", tricky}}},
				AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_Mode(42)},
			},
		},
		&csipb.ControllerPublishVolumeResponse{PublishContext: map[string]string{"devicePath": "/dev/xvdb"}},
		&csipb.ListVolumesResponse{Entries: []*csipb.ListVolumesResponse_Entry{
			{Volume: &csipb.Volume{VolumeId: "a", CapacityBytes: math.MaxInt64}, Status: &csipb.ListVolumesResponse_VolumeStatus{PublishedNodeIds: []string{"n", "m"}}},
			{Volume: &csipb.Volume{VolumeId: "b", CapacityBytes: -1}},
		}, NextToken: "1"},
		&csipb.GetCapacityResponse{AvailableCapacity: 12345, MaximumVolumeSize: wrapperspb.Int64(7)},
		wrapperspb.Double(math.Inf(1)),
		wrapperspb.Double(math.Inf(-1)),
		wrapperspb.Double(math.NaN()),
		wrapperspb.Double(1e-7),
		wrapperspb.Double(1e21),
		wrapperspb.Double(123456789.125),
		wrapperspb.Double(-0.000001),
		wrapperspb.Float(3.4e38),
		wrapperspb.Float(1.1),
		wrapperspb.UInt64(math.MaxUint64),
		wrapperspb.UInt32(math.MaxUint32),
		wrapperspb.Int32(math.MinInt32),
		wrapperspb.Bytes([]byte{0, 1, 2, 0xff}),
		wrapperspb.Bytes([]byte{}),
		wrapperspb.String(tricky),
		&structpb.Value{Kind: &structpb.Value_StructValue{StructValue: &structpb.Struct{Fields: map[string]*structpb.Value{
			"list": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(2.5), structpb.NewNullValue(), structpb.NewBoolValue(false)}}),
			"s":    structpb.NewStringValue(tricky),
		}}}},
	}
}

func TestSanitizeWritesWhatEncodingJSONWrites(t *testing.T) {
	for i, m := range sanitizeCorpus() {
		got, want := Sanitize(m), referenceSanitize(m)
		if got != want {
			t.Errorf("message %d (%T):\n got %s\nwant %s", i, m, got, want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("message %d (%T): not JSON: %s", i, m, got)
		}
	}
}

func FuzzSanitizeWritesWhatEncodingJSONWrites(f *testing.F) {
	f.Add("vol-1", "key", "value", 1.5, []byte("x"))
	f.Add("a<b>&\u2028\xff", "", "\x00", math.Inf(1), []byte(nil))
	f.Fuzz(func(t *testing.T, s, key, value string, x float64, raw []byte) {
		for _, m := range []proto.Message{
			&csipb.ControllerPublishVolumeRequest{VolumeId: s, VolumeContext: map[string]string{key: value}, Secrets: map[string]string{key: value}},
			wrapperspb.Double(x),
			wrapperspb.Float(float32(x)),
			wrapperspb.Bytes(raw),
		} {
			if got, want := Sanitize(m), referenceSanitize(m); got != want {
				t.Fatalf("%T:\n got %s\nwant %s", m, got, want)
			}
		}
	})
}

func BenchmarkSanitize(b *testing.B) {
	m := sanitizeCorpus()[3]
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = Sanitize(m)
		}
	})
	b.Run("maps+encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = referenceSanitize(m)
		}
	})
}
