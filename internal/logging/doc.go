// Package logging builds the process logger of the attacher from --v and
// --logging-format: zap behind logr, with V(n) written iff n <= --v, JSON
// or text lines that carry the logr level in a "v" field, stack traces only
// for logr misuse and panics, controller-runtime's per-reconcile trace
// hidden below --v=7, and values encoded only when a line is written
// (lazyCore). RouteKlog sends the Kubernetes libraries' klog output
// through the same logger.
//
// internal/options parses and validates the flags; main.go calls New with
// them and installs the logger for controller-runtime and klog.
package logging
