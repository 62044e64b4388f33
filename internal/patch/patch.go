package patch

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Op is one RFC 6902 operation.
type Op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// testOp is marshalled with its value even when the value is null: a test
// for absence must say "value": null.
type testOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// JSON is a list of operations; empty means nothing to write.
type JSON []any

// Empty tells whether the patch has no operations.
func (p JSON) Empty() bool { return len(p) == 0 }

// Data renders the patch body.
func (p JSON) Data() ([]byte, error) { return json.Marshal([]any(p)) }

// Patch returns the patch for client.Client.Patch.
func (p JSON) Patch() (client.Patch, error) {
	data, err := p.Data()
	if err != nil {
		return nil, err
	}
	return client.RawPatch(types.JSONPatchType, data), nil
}

// AddFinalizer appends finalizer to current (the object's finalizers as last
// seen). It returns an empty patch when the finalizer is already there.
// Appending with "/-" cannot disturb other entries; creating the list first
// tests that it is still absent or empty.
func AddFinalizer(current []string, finalizer string) JSON {
	if slices.Contains(current, finalizer) {
		return nil
	}
	const path = "/metadata/finalizers"
	if len(current) == 0 {
		// The API server drops an empty list, so "no finalizers" is always
		// an absent field: test for null.
		return JSON{
			testOp{Op: "test", Path: path, Value: nil},
			Op{Op: "add", Path: path, Value: []string{finalizer}},
		}
	}
	return JSON{Op{Op: "add", Path: path + "/-", Value: finalizer}}
}

// RemoveFinalizer removes every occurrence of finalizer from current. Each
// removal is guarded by a test of the element at its index, so a list that
// changed since it was read makes the whole patch fail. Indexes are removed
// from the highest down so that earlier removals do not shift later ones.
func RemoveFinalizer(current []string, finalizer string) JSON {
	var p JSON
	for i := len(current) - 1; i >= 0; i-- {
		if current[i] != finalizer {
			continue
		}
		path := "/metadata/finalizers/" + strconv.Itoa(i)
		p = append(p, testOp{Op: "test", Path: path, Value: finalizer}, Op{Op: "remove", Path: path})
	}
	return p
}

// SetAnnotation sets key to value given the object's annotations as last
// seen. Creating the map tests that it is still absent, because "add" on an
// existing map would replace it with ours alone.
func SetAnnotation(current map[string]string, key, value string) JSON {
	if v, ok := current[key]; ok && v == value {
		return nil
	}
	const path = "/metadata/annotations"
	if len(current) == 0 {
		// An empty map is absent on the server, as an empty list is.
		return JSON{
			testOp{Op: "test", Path: path, Value: nil},
			Op{Op: "add", Path: path, Value: map[string]string{key: value}},
		}
	}
	return JSON{Op{Op: "add", Path: path + "/" + escape(key), Value: value}}
}

// escape encodes a map key as an RFC 6901 JSON pointer token.
func escape(token string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}
