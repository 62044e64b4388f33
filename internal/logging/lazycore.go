package logging

import (
	"reflect"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
)

// lazyCore is the logger's zap core. It differs from the core zapcore.NewCore
// builds in two ways, both for the cost at the default --v=5:
//
//   - With keeps the values (plain, immutable ones; see plain) and encodes
//     them only when a line is written. zap's own core encodes them at once
//     into a copy of its encoder: a buffer of a kilobyte or more per
//     derived logger, and a json.Encoder per klog.KRef. controller-runtime
//     derives a logger with the controller's request and a reconcile ID,
//     and our reconcilers add the node and the driver, for every reconcile,
//     while most reconciles write nothing. A value that might change before
//     the line is written (a pointer, an error, a Stringer) is encoded at
//     once, as zap would, together with the values before it, so the order
//     of the keys is kept (and those of With calls before it, as the root
//     of a new chain).
//   - Below ReconcileTraceVerbosity it drops controller-runtime's
//     per-reconcile trace lines. Only V-level entries are looked at, so an
//     error with such a message still gets out.
//
// The output is the same as zap's core would write: the values of With
// first, oldest first, then the line's own.
type lazyCore struct {
	// eager writes the lines and holds the values that could not wait.
	eager zapcore.Core
	// parent holds the values of earlier With calls not encoded yet, and
	// fields those of this one. A derived core links to its parent instead
	// of copying its values: loggers are derived five to eight times per
	// reconcile, and copying would make that quadratic.
	parent    *lazyCore
	fields    []zapcore.Field
	hideTrace bool
}

var _ zapcore.Core = (*lazyCore)(nil)

func (c *lazyCore) Enabled(l zapcore.Level) bool { return c.eager.Enabled(l) }

func (c *lazyCore) With(fs []zapcore.Field) zapcore.Core {
	if len(fs) == 0 {
		return c
	}
	fields := make([]zapcore.Field, len(fs))
	deferrable := true
	for i, f := range fs {
		var ok bool
		fields[i], ok = plain(f)
		deferrable = deferrable && ok
	}
	if !deferrable {
		return &lazyCore{eager: c.eager.With(c.appendFields(nil, fields)), hideTrace: c.hideTrace}
	}
	return &lazyCore{eager: c.eager, parent: c, fields: fields, hideTrace: c.hideTrace}
}

// appendFields appends the values not encoded yet, oldest first, then fs.
func (c *lazyCore) appendFields(dst, fs []zapcore.Field) []zapcore.Field {
	if c.parent != nil {
		dst = c.parent.appendFields(dst, nil)
	}
	return append(append(dst, c.fields...), fs...)
}

func (c *lazyCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if !c.Enabled(e.Level) {
		return ce
	}
	if c.hideTrace && e.Level < zapcore.InfoLevel && isReconcileTrace(e.Message) {
		return ce
	}
	return ce.AddCore(e, c)
}

// fieldSlices recycles the slices Write joins the values in.
var fieldSlices = sync.Pool{New: func() any { return new([]zapcore.Field) }}

func (c *lazyCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	p := fieldSlices.Get().(*[]zapcore.Field)
	all := c.appendFields((*p)[:0], nil)
	for _, f := range fs {
		f, _ = plain(f)
		all = append(all, f)
	}
	err := c.eager.Write(e, all)
	clear(all) // drop the references before the slice goes back
	*p = all[:0]
	fieldSlices.Put(p)
	return err
}

func (c *lazyCore) Sync() error { return c.eager.Sync() }

// objectRefLog is the type klog.ObjectRef.MarshalLog returns, which zapr
// logs instead of the ObjectRef (through encoding/json, as its type is
// known to zap only as an interface{}).
var objectRefLog = objectRefLogType()

// objectRefLogType returns that type if it still has the fields plain reads
// (Name and Namespace, in that order), else nil, and such values are left
// to zap's reflection.
func objectRefLogType() reflect.Type {
	t := reflect.TypeOf(klog.ObjectRef{}.MarshalLog())
	if t.Kind() != reflect.Struct || t.NumField() != 2 ||
		t.Field(0).Name != "Name" || t.Field(0).Type.Kind() != reflect.String ||
		t.Field(1).Name != "Namespace" || t.Field(1).Type.Kind() != reflect.String {
		return nil
	}
	return t
}

// plain rewrites a field that zap would encode through reflection into one
// it encodes directly, with the same JSON: a klog.ObjectRef (from
// klog.KRef/KObj) becomes an object of its name and namespace, and a value
// of a string type (types.UID, types.NodeName, ...) a string. deferrable
// reports whether the value is immutable, so that it may be encoded later.
func plain(f zapcore.Field) (_ zapcore.Field, deferrable bool) {
	switch f.Type {
	case zapcore.StringType, zapcore.BoolType, zapcore.DurationType,
		zapcore.Int64Type, zapcore.Int32Type, zapcore.Int16Type, zapcore.Int8Type,
		zapcore.Uint64Type, zapcore.Uint32Type, zapcore.Uint16Type, zapcore.Uint8Type, zapcore.UintptrType,
		zapcore.Float64Type, zapcore.Float32Type, zapcore.TimeType, zapcore.TimeFullType, zapcore.SkipType:
		return f, true
	case zapcore.ObjectMarshalerType:
		_, ok := f.Interface.(objectRef)
		return f, ok
	case zapcore.ReflectType:
		t := reflect.TypeOf(f.Interface)
		switch {
		case t != nil && t == objectRefLog:
			v := reflect.ValueOf(f.Interface)
			return zap.Object(f.Key, objectRef{name: v.Field(0).String(), namespace: v.Field(1).String()}), true
		case t != nil && t.Kind() == reflect.String:
			return zap.String(f.Key, reflect.ValueOf(f.Interface).String()), true
		}
	}
	return f, false
}

// objectRef encodes a klog.ObjectRef as its MarshalLog form does through
// encoding/json: {"name":..., "namespace":...}, the namespace omitted when
// empty.
type objectRef struct{ name, namespace string }

func (r objectRef) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("name", r.name)
	if r.namespace != "" {
		enc.AddString("namespace", r.namespace)
	}
	return nil
}
