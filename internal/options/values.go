package options

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// featureGatesValue is the flag.Value of --feature-gates. Like
// component-base, repeated flags merge, later keys win.
type featureGatesValue struct{ m *map[string]bool }

func (v *featureGatesValue) String() string {
	if v == nil || v.m == nil || len(*v.m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(*v.m))
	for k, b := range *v.m {
		parts = append(parts, k+"="+strconv.FormatBool(b))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (v *featureGatesValue) Set(s string) error {
	known := DefaultFeatureGates()
	parsed := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, val, ok := strings.Cut(item, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok {
			return fmt.Errorf("%q: missing =true or =false", item)
		}
		if _, isKnown := known[key]; !isKnown {
			// The reference's flag also takes the gates of the Kubernetes
			// libraries it links (AllAlpha, LoggingBetaOptions, the API
			// server's...). None changes how volumes are attached, and
			// accepting them would mean ignoring them.
			return fmt.Errorf("unknown feature gate %q: the attacher has only %s and %s; "+
				"the other gates the reference accepts belong to its Kubernetes libraries and do not apply here, remove it",
				key, FeatureMutableCSINodeAllocatableCount, FeatureReleaseLeaderElectionOnExit)
		}
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("%s=%q: value must be true or false", key, val)
		}
		parsed[key] = b
	}
	if *v.m == nil {
		*v.m = known
	}
	for k, b := range parsed {
		(*v.m)[k] = b
	}
	return nil
}

// labelsValue is the flag.Value of --leader-election-labels ("k:v,k2:v2").
// Keys and values are checked as Kubernetes label keys and values here,
// because a bad label would otherwise fail only when the Lease is written.
type labelsValue struct{ m *map[string]string }

func (v *labelsValue) String() string {
	if v == nil || v.m == nil || len(*v.m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(*v.m))
	for k, val := range *v.m {
		parts = append(parts, k+":"+val)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (v *labelsValue) Set(s string) error {
	parsed := map[string]string{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, ":")
		if len(parts) != 2 {
			return fmt.Errorf("%q: want key:value", item)
		}
		key, val := strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])
		if msgs := validation.IsQualifiedName(key); len(msgs) > 0 {
			return fmt.Errorf("label key %q: %s", key, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(val); len(msgs) > 0 {
			return fmt.Errorf("label value %q: %s", val, strings.Join(msgs, "; "))
		}
		parsed[key] = val
	}
	if *v.m == nil {
		*v.m = map[string]string{}
	}
	for k, val := range parsed {
		(*v.m)[k] = val
	}
	return nil
}

// logFormatValue is the flag.Value of --logging-format and --log-format.
type logFormatValue struct{ p *string }

func (v *logFormatValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *logFormatValue) Set(s string) error {
	switch s {
	case LogFormatText, LogFormatJSON:
		*v.p = s
		return nil
	default:
		return fmt.Errorf("must be %q or %q", LogFormatText, LogFormatJSON)
	}
}

// quantityValue is the flag.Value of the log buffer-size flags: a
// non-negative resource quantity (e.g. 64Ki), checked and kept as given.
type quantityValue struct{ p *string }

func (v *quantityValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *quantityValue) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return errors.New("must be a quantity such as 64Ki or 1M")
	}
	if q.Sign() < 0 {
		return errors.New("must not be negative")
	}
	*v.p = s
	return nil
}
