package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Log levels of the gRPC logging interceptor. The product runs at -v=5 by
// default, where the attacher logs its per-volume decisions; message bodies
// would drown those, so they only appear above 5. Failed calls are logged
// below 5 because they explain the decisions.
const (
	LogLevelErrors = 4
	LogLevelBodies = 6
)

// StrippedValue replaces the value of every field marked csi_secret.
const StrippedValue = "***stripped***"

// maxSanitizeDepth bounds the recursion; CSI messages are a few levels deep.
const maxSanitizeDepth = 64

// Sanitize renders a protobuf message as JSON with every field that carries
// the CSI csi_secret option (at any depth, maps and lists included)
// replaced by StrippedValue. Unset fields are omitted. It never fails: an
// unrenderable message yields a placeholder naming its type.
func Sanitize(m proto.Message) string {
	if m == nil {
		return "null"
	}
	b, err := json.Marshal(sanitizeMessage(m.ProtoReflect(), 0))
	if err != nil {
		return fmt.Sprintf("<unprintable %T: %v>", m, err)
	}
	return string(b)
}

// sanitizeAny renders any gRPC payload; they are protobuf messages in
// practice, but the interceptor signature says `any`.
func sanitizeAny(v any) string {
	if m, ok := v.(proto.Message); ok {
		return Sanitize(m)
	}
	return fmt.Sprintf("<%T>", v)
}

func sanitizeMessage(m protoreflect.Message, depth int) any {
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
		out[name] = sanitizeField(fd, v, depth)
		return true
	})
	return out
}

func sanitizeField(fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) any {
	switch {
	case fd.IsList():
		l := v.List()
		out := make([]any, l.Len())
		for i := range out {
			out[i] = sanitizeSingular(fd, l.Get(i), depth)
		}
		return out
	case fd.IsMap():
		out := map[string]any{}
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			out[k.String()] = sanitizeSingular(fd.MapValue(), mv, depth)
			return true
		})
		return out
	default:
		return sanitizeSingular(fd, v, depth)
	}
}

func sanitizeSingular(fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return sanitizeMessage(v.Message(), depth+1)
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return int32(v.Enum())
	case protoreflect.BytesKind:
		return v.Bytes() // base64 in JSON
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		// JSON has no NaN or Inf; json.Marshal would fail on them.
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return f
	default:
		return v.Interface()
	}
}

func isSecret(fd protoreflect.FieldDescriptor) bool {
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	if !ok || opts == nil {
		return false
	}
	secret, _ := proto.GetExtension(opts, csipb.E_CsiSecret).(bool)
	return secret
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence;
// n <= 0 means no limit.
func truncate(s string, n int) string {
	if n <= 0 || len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("...[truncated, %d bytes in total]", len(s))
}

// logInterceptor logs calls with secrets stripped. Bodies are rendered only
// when their level is enabled, so the cost is nil at the default level.
func logInterceptor(log logr.Logger, maxResponseLen int) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		bodies := log.V(LogLevelBodies)
		if bodies.Enabled() {
			bodies.Info("GRPC call", "method", method, "request", sanitizeAny(req))
		}
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err != nil {
			level := LogLevelErrors
			if method == csipb.Identity_Probe_FullMethodName {
				// Probe fails every second while the driver is down; the
				// health monitor reports that once at Info instead.
				level = LogLevelBodies
			}
			log.V(level).Info("GRPC error", "method", method, "grpcCode", statusLabel(err), "error", err.Error())
			return err
		}
		if bodies.Enabled() {
			bodies.Info("GRPC response", "method", method, "response", truncate(sanitizeAny(reply), maxResponseLen))
		}
		return nil
	}
}
