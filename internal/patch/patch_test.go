package patch

import (
	"encoding/json"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/types"
)

const fin = "external-attacher/csi-test"

// body renders p, failing the test on error.
func body(g Gomega, p JSON) string {
	data, err := p.Data()
	g.Expect(err).NotTo(HaveOccurred())
	return string(data)
}

// apply applies p to doc the way the API server does (RFC 6902).
func apply(p JSON, doc string) (string, error) {
	data, err := p.Data()
	if err != nil {
		return "", err
	}
	decoded, err := jsonpatch.DecodePatch(data)
	if err != nil {
		return "", err
	}
	out, err := decoded.Apply([]byte(doc))
	return string(out), err
}

// meta decodes the metadata of a patched document.
type meta struct {
	Metadata struct {
		Name        string            `json:"name"`
		Finalizers  []string          `json:"finalizers"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

func decode(g Gomega, doc string) meta {
	var m meta
	g.Expect(json.Unmarshal([]byte(doc), &m)).To(Succeed())
	return m
}

func TestAddFinalizer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		current []string
		want    string // exact body; "" means an empty patch
		// doc is the object the patch was built from; after applying, it must
		// have wantFinalizers.
		doc            string
		wantFinalizers []string
	}{
		{
			name:           "nil list tests for null and adds the array",
			current:        nil,
			want:           `[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["external-attacher/csi-test"]}]`,
			doc:            `{"metadata":{"name":"pv1"}}`,
			wantFinalizers: []string{fin},
		},
		{
			name:           "empty list is the absent field the API server returns: tests for null",
			current:        []string{},
			want:           `[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["external-attacher/csi-test"]}]`,
			doc:            `{"metadata":{"name":"pv1"}}`,
			wantFinalizers: []string{fin},
		},
		{
			name:           "non-empty list appends",
			current:        []string{"kubernetes.io/pv-protection"},
			want:           `[{"op":"add","path":"/metadata/finalizers/-","value":"external-attacher/csi-test"}]`,
			doc:            `{"metadata":{"name":"pv1","finalizers":["kubernetes.io/pv-protection"]}}`,
			wantFinalizers: []string{"kubernetes.io/pv-protection", fin},
		},
		{
			name:           "already present is empty",
			current:        []string{"a", fin, "b"},
			want:           "",
			doc:            `{"metadata":{"name":"pv1","finalizers":["a","external-attacher/csi-test","b"]}}`,
			wantFinalizers: []string{"a", fin, "b"},
		},
		{
			name:           "already present alone is empty",
			current:        []string{fin},
			want:           "",
			doc:            `{"metadata":{"name":"pv1","finalizers":["external-attacher/csi-test"]}}`,
			wantFinalizers: []string{fin},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			p := AddFinalizer(tt.current, fin)
			if tt.want == "" {
				g.Expect(p.Empty()).To(BeTrue())
				g.Expect(p).To(BeEmpty())
				return
			}
			g.Expect(p.Empty()).To(BeFalse())
			g.Expect(body(g, p)).To(Equal(tt.want))

			out, err := apply(p, tt.doc)
			g.Expect(err).NotTo(HaveOccurred())
			m := decode(g, out)
			g.Expect(m.Metadata.Finalizers).To(Equal(tt.wantFinalizers))
			g.Expect(m.Metadata.Name).To(Equal("pv1"))
		})
	}
}

func TestAddFinalizerDoesNotModifyInput(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	current := make([]string, 1, 4)
	current[0] = "a"
	_ = AddFinalizer(current, fin)
	g.Expect(current).To(Equal([]string{"a"}))
	g.Expect(current[:2][1]).To(BeEmpty(), "the spare capacity must not be written")
}

func TestAddFinalizerConcurrentWriters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// stale is the list the patch is built from; doc is the object as it
		// is on the server by the time the patch arrives.
		stale          []string
		doc            string
		wantErr        bool
		wantFinalizers []string
	}{
		{
			name:    "built from nil, another finalizer added meanwhile: fails instead of clobbering",
			stale:   nil,
			doc:     `{"metadata":{"finalizers":["other/finalizer"]}}`,
			wantErr: true,
		},
		{
			name:    "built from nil, list became empty meanwhile: fails",
			stale:   nil,
			doc:     `{"metadata":{"finalizers":[]}}`,
			wantErr: true,
		},
		{
			name:    "built from empty, another finalizer added meanwhile: fails",
			stale:   []string{},
			doc:     `{"metadata":{"finalizers":["other/finalizer"]}}`,
			wantErr: true,
		},
		{
			name:           "append keeps a finalizer another writer added concurrently",
			stale:          []string{"a"},
			doc:            `{"metadata":{"finalizers":["a","other/finalizer"]}}`,
			wantFinalizers: []string{"a", "other/finalizer", fin},
		},
		{
			name:           "append keeps the list intact when another writer removed an entry",
			stale:          []string{"a", "b"},
			doc:            `{"metadata":{"finalizers":["b"]}}`,
			wantFinalizers: []string{"b", fin},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			out, err := apply(AddFinalizer(tt.stale, fin), tt.doc)
			if tt.wantErr {
				g.Expect(err).To(HaveOccurred())
				g.Expect(errors.Is(err, jsonpatch.ErrTestFailed)).To(BeTrue(), "want a failed test op, got %v", err)
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(decode(g, out).Metadata.Finalizers).To(Equal(tt.wantFinalizers))
		})
	}
}

func TestRemoveFinalizer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		current        []string
		want           string
		wantFinalizers []string
	}{
		{
			name:           "only element",
			current:        []string{fin},
			want:           `[{"op":"test","path":"/metadata/finalizers/0","value":"external-attacher/csi-test"},{"op":"remove","path":"/metadata/finalizers/0"}]`,
			wantFinalizers: []string{},
		},
		{
			name:           "in the middle",
			current:        []string{"a", fin, "b"},
			want:           `[{"op":"test","path":"/metadata/finalizers/1","value":"external-attacher/csi-test"},{"op":"remove","path":"/metadata/finalizers/1"}]`,
			wantFinalizers: []string{"a", "b"},
		},
		{
			name:    "multiple occurrences are removed from the highest index down",
			current: []string{fin, "a", fin, "b", fin},
			want: `[{"op":"test","path":"/metadata/finalizers/4","value":"external-attacher/csi-test"},{"op":"remove","path":"/metadata/finalizers/4"},` +
				`{"op":"test","path":"/metadata/finalizers/2","value":"external-attacher/csi-test"},{"op":"remove","path":"/metadata/finalizers/2"},` +
				`{"op":"test","path":"/metadata/finalizers/0","value":"external-attacher/csi-test"},{"op":"remove","path":"/metadata/finalizers/0"}]`,
			wantFinalizers: []string{"a", "b"},
		},
		{
			name:           "adjacent occurrences",
			current:        []string{"a", fin, fin},
			want:           `[{"op":"test","path":"/metadata/finalizers/2","value":"external-attacher/csi-test"},{"op":"remove","path":"/metadata/finalizers/2"},{"op":"test","path":"/metadata/finalizers/1","value":"external-attacher/csi-test"},{"op":"remove","path":"/metadata/finalizers/1"}]`,
			wantFinalizers: []string{"a"},
		},
		{name: "absent", current: []string{"a", "b"}, want: ""},
		{name: "prefix of ours is not ours", current: []string{"external-attacher/csi"}, want: ""},
		{name: "empty", current: []string{}, want: ""},
		{name: "nil", current: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			p := RemoveFinalizer(tt.current, fin)
			if tt.want == "" {
				g.Expect(p.Empty()).To(BeTrue())
				return
			}
			g.Expect(p.Empty()).To(BeFalse())
			g.Expect(body(g, p)).To(Equal(tt.want))

			doc, err := json.Marshal(map[string]any{"metadata": map[string]any{"name": "pv1", "finalizers": tt.current}})
			g.Expect(err).NotTo(HaveOccurred())
			out, err := apply(p, string(doc))
			g.Expect(err).NotTo(HaveOccurred())
			m := decode(g, out)
			g.Expect(m.Metadata.Finalizers).To(Equal(tt.wantFinalizers))
			g.Expect(m.Metadata.Name).To(Equal("pv1"))
		})
	}
}

func TestRemoveFinalizerConcurrentWriters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		stale          []string
		doc            string
		wantErr        error
		wantFinalizers []string
	}{
		{
			name:    "element moved: an earlier entry was removed meanwhile",
			stale:   []string{"a", fin},
			doc:     `{"metadata":{"finalizers":["external-attacher/csi-test"]}}`,
			wantErr: jsonpatch.ErrInvalidIndex, // index 1 no longer exists
		},
		{
			name:    "element moved: an entry was inserted before it meanwhile",
			stale:   []string{"a", fin},
			doc:     `{"metadata":{"finalizers":["a","other/finalizer","external-attacher/csi-test"]}}`,
			wantErr: jsonpatch.ErrTestFailed,
		},
		{
			name:    "another writer's finalizer now sits at our index",
			stale:   []string{fin},
			doc:     `{"metadata":{"finalizers":["other/finalizer"]}}`,
			wantErr: jsonpatch.ErrTestFailed,
		},
		{
			name:    "the list is gone",
			stale:   []string{fin},
			doc:     `{"metadata":{}}`,
			wantErr: jsonpatch.ErrMissing,
		},
		{
			name:    "one of several occurrences already removed: whole patch fails",
			stale:   []string{fin, "a", fin},
			doc:     `{"metadata":{"finalizers":["a","external-attacher/csi-test"]}}`,
			wantErr: jsonpatch.ErrInvalidIndex,
		},
		{
			name:           "entries appended after ours do not matter",
			stale:          []string{"a", fin},
			doc:            `{"metadata":{"finalizers":["a","external-attacher/csi-test","other/finalizer"]}}`,
			wantFinalizers: []string{"a", "other/finalizer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			out, err := apply(RemoveFinalizer(tt.stale, fin), tt.doc)
			if tt.wantErr != nil {
				g.Expect(err).To(HaveOccurred())
				g.Expect(errors.Is(err, tt.wantErr)).To(BeTrue(), "want %v, got %v", tt.wantErr, err)
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(decode(g, out).Metadata.Finalizers).To(Equal(tt.wantFinalizers))
		})
	}
}

func TestSetAnnotation(t *testing.T) {
	t.Parallel()
	const key = "csi.alpha.kubernetes.io/node-id"
	tests := []struct {
		name            string
		current         map[string]string
		key, value      string
		want            string
		wantAnnotations map[string]string
	}{
		{
			name:            "nil map tests for null and adds the map",
			current:         nil,
			key:             key,
			value:           "nodeID1",
			want:            `[{"op":"test","path":"/metadata/annotations","value":null},{"op":"add","path":"/metadata/annotations","value":{"csi.alpha.kubernetes.io/node-id":"nodeID1"}}]`,
			wantAnnotations: map[string]string{key: "nodeID1"},
		},
		{
			name:            "empty map is the absent field: tests for null and adds the map",
			current:         map[string]string{},
			key:             key,
			value:           "nodeID1",
			want:            `[{"op":"test","path":"/metadata/annotations","value":null},{"op":"add","path":"/metadata/annotations","value":{"csi.alpha.kubernetes.io/node-id":"nodeID1"}}]`,
			wantAnnotations: map[string]string{key: "nodeID1"},
		},
		{
			name:            "existing map adds the escaped key and keeps the others",
			current:         map[string]string{"other": "x"},
			key:             key,
			value:           "nodeID1",
			want:            `[{"op":"add","path":"/metadata/annotations/csi.alpha.kubernetes.io~1node-id","value":"nodeID1"}]`,
			wantAnnotations: map[string]string{"other": "x", key: "nodeID1"},
		},
		{
			name:            "different value replaces it",
			current:         map[string]string{key: "old", "other": "x"},
			key:             key,
			value:           "nodeID1",
			want:            `[{"op":"add","path":"/metadata/annotations/csi.alpha.kubernetes.io~1node-id","value":"nodeID1"}]`,
			wantAnnotations: map[string]string{"other": "x", key: "nodeID1"},
		},
		{
			name:            "empty value is a value",
			current:         map[string]string{"other": "x"},
			key:             key,
			value:           "",
			want:            `[{"op":"add","path":"/metadata/annotations/csi.alpha.kubernetes.io~1node-id","value":""}]`,
			wantAnnotations: map[string]string{"other": "x", key: ""},
		},
		{
			name:    "same value is empty",
			current: map[string]string{key: "nodeID1"},
			key:     key,
			value:   "nodeID1",
			want:    "",
		},
		{
			name:    "same empty value is empty",
			current: map[string]string{key: ""},
			key:     key,
			value:   "",
			want:    "",
		},
		{
			name:            "tilde is escaped as ~0 before slash as ~1",
			current:         map[string]string{"a": "b"},
			key:             "ex~ample.com/k~1",
			value:           "v",
			want:            `[{"op":"add","path":"/metadata/annotations/ex~0ample.com~1k~01","value":"v"}]`,
			wantAnnotations: map[string]string{"a": "b", "ex~ample.com/k~1": "v"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			p := SetAnnotation(tt.current, tt.key, tt.value)
			if tt.want == "" {
				g.Expect(p.Empty()).To(BeTrue())
				return
			}
			g.Expect(body(g, p)).To(Equal(tt.want))

			md := map[string]any{"name": "va1"}
			if len(tt.current) > 0 {
				md["annotations"] = tt.current
			}
			doc, err := json.Marshal(map[string]any{"metadata": md})
			g.Expect(err).NotTo(HaveOccurred())
			out, err := apply(p, string(doc))
			g.Expect(err).NotTo(HaveOccurred())
			m := decode(g, out)
			g.Expect(m.Metadata.Annotations).To(Equal(tt.wantAnnotations))
			g.Expect(m.Metadata.Name).To(Equal("va1"))
		})
	}
}

func TestSetAnnotationConcurrentWriters(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	const key = "csi.alpha.kubernetes.io/node-id"

	// Built from a copy without annotations; another writer added one
	// meanwhile. "add" of the whole map would drop it, so the test op fails.
	_, err := apply(SetAnnotation(nil, key, "nodeID1"), `{"metadata":{"annotations":{"other":"x"}}}`)
	g.Expect(err).To(HaveOccurred())
	g.Expect(errors.Is(err, jsonpatch.ErrTestFailed)).To(BeTrue(), "got %v", err)

	// Built from a copy with a map: a concurrent addition of another key
	// survives.
	out, err := apply(SetAnnotation(map[string]string{"a": "b"}, key, "nodeID1"), `{"metadata":{"annotations":{"a":"b","other":"x"}}}`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(decode(g, out).Metadata.Annotations).To(Equal(map[string]string{"a": "b", "other": "x", key: "nodeID1"}))
}

func TestEscape(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{name: "plain", in: "plain", want: "plain"},
		{name: "slash", in: "a/b", want: "a~1b"},
		{name: "tilde", in: "a~b", want: "a~0b"},
		{name: "tilde-one literal is not a slash", in: "~1", want: "~01"},
		{name: "slash then zero", in: "/0", want: "~10"},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			NewWithT(t).Expect(escape(tt.in)).To(Equal(tt.want))
		})
	}
}

func TestPatchType(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	p := AddFinalizer([]string{"a"}, fin)
	cp, err := p.Patch()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cp.Type()).To(Equal(types.JSONPatchType))
	data, err := cp.Data(nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).To(Equal(`[{"op":"add","path":"/metadata/finalizers/-","value":"external-attacher/csi-test"}]`))

	// An empty patch renders as null; callers check Empty() and skip it.
	var empty JSON
	g.Expect(empty.Empty()).To(BeTrue())
	g.Expect(body(g, empty)).To(Equal("null"))
}
