// Package logmsg holds an analyzer that checks that every logr message is
// a constant string: the message says what happened and the key/value
// pairs carry the variable parts, so that one event always logs the same
// message and logs can be searched for it.
//
// It reports Info and Error calls on a logr.Logger (also through V(n),
// pointers, and aliases of logr.Logger such as klog.Logger) whose message
// is not a compile-time string constant: fmt.Sprintf results, variables,
// method calls. logcheck (sigs.k8s.io/logtools) checks the key/value pairs
// of the same calls but not their message.
package logmsg
