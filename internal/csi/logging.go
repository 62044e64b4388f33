package csi

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
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
// replaced by StrippedValue. Unset fields are omitted; keys are sorted. It
// never fails: a message nested deeper than maxSanitizeDepth shows
// "<too deep>" there.
//
// The JSON is written directly, as encoding/json would write the message
// turned into maps and lists (the same keys, escaping and numbers), without
// building those maps: from --v=6 every CSI call logs its request and its
// response.
func Sanitize(m proto.Message) string {
	if m == nil {
		return "null"
	}
	return string(appendMessage(make([]byte, 0, 256), m.ProtoReflect(), 0))
}

// sanitizeAny renders any gRPC payload; they are protobuf messages in
// practice, but the interceptor signature says `any`.
func sanitizeAny(v any) string {
	if m, ok := v.(proto.Message); ok {
		return Sanitize(m)
	}
	return fmt.Sprintf("<%T>", v)
}

// messageField is a field of a message type with what Sanitize needs to
// know of it.
type messageField struct {
	fd     protoreflect.FieldDescriptor
	key    string
	secret bool
}

// messageFields caches, per message type, its fields sorted by name (the
// order encoding/json gives map keys), so that a message is written by
// walking them, without collecting and sorting its set fields each time.
var messageFields sync.Map // protoreflect.MessageDescriptor -> []messageField

func fieldsOf(md protoreflect.MessageDescriptor) []messageField {
	if fields, ok := messageFields.Load(md); ok {
		return fields.([]messageField)
	}
	fds := md.Fields()
	fields := make([]messageField, fds.Len())
	for i := range fields {
		fd := fds.Get(i)
		fields[i] = messageField{fd: fd, key: string(fd.Name()), secret: isSecret(fd)}
	}
	slices.SortFunc(fields, func(a, b messageField) int { return strings.Compare(a.key, b.key) })
	messageFields.Store(md, fields)
	return fields
}

// extensionFields lists the set fields of a message that may hold
// extensions (none of CSI's do), sorted by key.
func extensionFields(m protoreflect.Message) []messageField {
	var fields []messageField
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		key := string(fd.Name())
		if fd.IsExtension() {
			key = "[" + string(fd.FullName()) + "]"
		}
		fields = append(fields, messageField{fd: fd, key: key, secret: isSecret(fd)})
		return true
	})
	slices.SortFunc(fields, func(a, b messageField) int { return strings.Compare(a.key, b.key) })
	return fields
}

func appendMessage(b []byte, m protoreflect.Message, depth int) []byte {
	if m == nil || !m.IsValid() {
		return append(b, "null"...)
	}
	if depth > maxSanitizeDepth {
		return appendJSONString(b, "<too deep>")
	}
	md := m.Descriptor()
	fields := fieldsOf(md)
	if md.ExtensionRanges().Len() > 0 {
		fields = extensionFields(m)
	}
	b = append(b, '{')
	first := true
	for _, f := range fields {
		if !m.Has(f.fd) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, f.key)
		b = append(b, ':')
		if f.secret {
			b = appendJSONString(b, StrippedValue)
			continue
		}
		b = appendField(b, f.fd, m.Get(f.fd), depth)
	}
	return append(b, '}')
}

func appendField(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) []byte {
	switch {
	case fd.IsList():
		l := v.List()
		b = append(b, '[')
		for i := range l.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSingular(b, fd, l.Get(i), depth)
		}
		return append(b, ']')
	case fd.IsMap():
		type entry struct {
			key string
			v   protoreflect.Value
		}
		var entries []entry
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			entries = append(entries, entry{key: k.String(), v: mv})
			return true
		})
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
		b = append(b, '{')
		for i, e := range entries {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, e.key)
			b = append(b, ':')
			b = appendSingular(b, fd.MapValue(), e.v, depth)
		}
		return append(b, '}')
	default:
		return appendSingular(b, fd, v, depth)
	}
}

func appendSingular(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) []byte {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return appendMessage(b, v.Message(), depth+1)
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return appendJSONString(b, string(ev.Name()))
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10)
	case protoreflect.BytesKind:
		// encoding/json's form of a []byte: base64, null for nil.
		raw := v.Bytes()
		if raw == nil {
			return append(b, "null"...)
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, raw)
		return append(b, '"')
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return appendJSONFloat(b, v.Float())
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool())
	case protoreflect.StringKind:
		return appendJSONString(b, v.String())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.AppendInt(b, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.AppendUint(b, v.Uint(), 10)
	default:
		return appendJSONString(b, fmt.Sprint(v.Interface()))
	}
}

// appendJSONFloat writes f as encoding/json writes a float64; JSON has no
// NaN or Inf, which are written as strings.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendJSONString(b, strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 -> e-9, as encoding/json does.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as encoding/json writes a string: quotes,
// backslashes and control characters escaped, <, > and & as \u003c etc.,
// invalid UTF-8 as \ufffd, and U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
