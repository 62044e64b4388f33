// Package rights is the table of the API rights the attacher needs, read
// from the RBAC that ships (config/rbac, embedded in the binary), with how
// the attacher uses each; the SelfSubjectAccessReviews that check them; the
// verdicts on the answers; and Monitor, the running attacher's readiness
// check on them.
//
// The attacher (main.go: the Monitor and the Lease watch at start;
// controllers.ReviewGrants: the Secret watch of its plan) and
// `csi-attacher doctor` (internal/doctor) both use it, so
// the server does not depend on the subcommand's package. The embedded
// roles are parsed on first use, and a role that does not parse is an
// error the caller returns, never a panic at import.
package rights
