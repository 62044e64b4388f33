package rights

import "fmt"

// Status is the verdict on the rights, in the doctor's words: the doctor
// prints it, the attacher logs it (Monitor).
type Status string

// Verdicts, in increasing order of gravity except SKIP, which only says the
// check could not run.
const (
	StatusOK   Status = "OK"
	StatusWarn Status = "WARN"
	StatusFail Status = "FAIL"
	StatusSkip Status = "SKIP"
)

// Verdict is one verdict on the reviewed rights.
type Verdict struct {
	Status  Status
	Message string
}

// Verdicts gives one OK verdict when every right is granted, else one FAIL
// per missing right (or per review that failed), a WARN for a missing right
// the attacher can run without. user, when known, is named in the
// verdicts. leaderElection only adds a note when it is off. The doctor
// prints these verdicts and the attacher logs them at start (Monitor).
func Verdicts(user string, leaderElection bool, checks []RightCheck) []Verdict {
	who := "us"
	if user != "" {
		who = user
	}
	leaseRef := ""
	if rs, err := shipped(); err == nil {
		leaseRef = rs.lease.ref
	}
	var out []Verdict
	failed := false
	for _, c := range checks {
		switch {
		case c.Err != nil:
			out = append(out, Verdict{Status: StatusFail,
				Message: fmt.Sprintf("could not check %s: %v", c.Right, c.Err)})
			failed = true
		case !c.Allowed:
			msg := fmt.Sprintf("%s may not %s: grant it in the %s", who, c.Right, c.Right.GrantedBy)
			if c.Right.Namespace != "" && c.Right.GrantedBy == leaseRef {
				msg += " bound in namespace " + c.Right.Namespace
			}
			// The driver's own names, as the sidecar Component deploys them.
			if c.Right.GrantedByComponent != "" {
				msg += ", or in the " + c.Right.GrantedByComponent
			}
			if c.Reason != "" {
				msg += " (" + c.Reason + ")"
			}
			status := StatusFail
			if c.Right.WithoutIt != "" {
				status = StatusWarn
				msg += "; without it, " + c.Right.WithoutIt
			} else {
				failed = true
			}
			out = append(out, Verdict{Status: status, Message: msg})
		}
	}
	if failed {
		return out
	}
	if len(out) > 0 {
		// Only optional rights are missing: say so, and that the rest is fine.
		granted := 0
		for _, c := range checks {
			if c.Granted() {
				granted++
			}
		}
		return append(out, Verdict{Status: StatusOK,
			Message: fmt.Sprintf("the %d API rights the attacher cannot work without are granted to %s", granted, who)})
	}
	if len(checks) == 0 {
		return []Verdict{{Status: StatusSkip, Message: "no rights were checked"}}
	}
	msg := fmt.Sprintf("all %d API rights the attacher needs are granted to %s", len(checks), who)
	if !leaderElection {
		msg += " (Lease rights not checked: --leader-election=false)"
	}
	return []Verdict{{Status: StatusOK, Message: msg}}
}
