package doctor

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/rights"
)

// Status is the verdict of one check; the rights' verdicts share it.
type Status = rights.Status

// Verdicts, in increasing order of gravity except SKIP, which only says the
// check could not run.
const (
	StatusOK   = rights.StatusOK
	StatusWarn = rights.StatusWarn
	StatusFail = rights.StatusFail
	StatusSkip = rights.StatusSkip
)

// Check names, as printed after the verdict.
const (
	CheckDriverName      = "driver"
	CheckModeName        = "mode"
	CheckAPIName         = "api"
	CheckRightsName      = "rights"
	CheckSecretWatchName = "secret-watch"
	CheckCSIDriverName   = "csidriver"
	CheckCSINodesName    = "csinodes"
	CheckAttachmentsName = "attachments"
)

// Limits of the listings.
const (
	// MaxListed is the most objects named by one verdict.
	MaxListed = 10
	// MaxErrorLength is the most characters of an error message quoted.
	MaxErrorLength = 200
	// StuckAfter is how long a VolumeAttachment may be deleting, or waiting
	// for its first attach, before it counts as stuck.
	StuckAfter = 10 * time.Minute
)

// Result is one verdict.
type Result struct {
	// Check is the check's name, e.g. "rights".
	Check string `json:"check"`
	// Status is the verdict.
	Status Status `json:"status"`
	// Message says what was found and, unless the verdict is OK, what to do.
	Message string `json:"message"`
	// Details are the listed items (capabilities, nodes, VolumeAttachments).
	Details []string `json:"details,omitempty"`
}

// String renders the verdict line, without the details.
func (r Result) String() string {
	return fmt.Sprintf("%-4s %s: %s", r.Status, r.Check, r.Message)
}

// DriverInfo is what the driver announced at connect.
type DriverInfo struct {
	Name          string
	VendorVersion string
	Capabilities  csi.Capabilities
}

// DriverProbe is the outcome of connecting to the driver.
type DriverProbe struct {
	// Address is the endpoint as given, in canonical form when it parsed.
	Address string
	// Wait is how long we waited for the driver.
	Wait time.Duration
	// SocketMissing is set when the address is a unix socket whose file
	// does not exist.
	SocketMissing bool
	// SocketAccess is set when the permissions of the unix socket, or of a
	// directory above it, keep this process out (a *csi.SocketAccessError:
	// owner, mode, our IDs and the fix).
	SocketAccess error
	// Info is set when the connection succeeded.
	Info *DriverInfo
	// Err is set when it failed.
	Err error
}

// CheckDriver turns the connection outcome into the "driver" verdict and,
// when connected, the "mode" verdict.
func CheckDriver(p DriverProbe) []Result {
	if p.Err != nil || p.Info == nil {
		msg := fmt.Sprintf("cannot reach the CSI driver at %s within %s: %v", p.Address, p.Wait, p.Err)
		switch {
		case p.SocketMissing:
			msg = fmt.Sprintf("cannot reach the CSI driver at %s within %s: the socket file does not exist", p.Address, p.Wait)
		case p.SocketAccess != nil:
			// The fix is in the message; the generic advice below would mislead.
			return []Result{{Check: CheckDriverName, Status: StatusFail,
				Message: fmt.Sprintf("cannot connect to the CSI driver at %s: %v", p.Address, p.SocketAccess)}}
		}
		return []Result{{
			Check:  CheckDriverName,
			Status: StatusFail,
			Message: msg + ". Check that the driver's controller container is running and healthy, that it " +
				"serves on this socket, and that --csi-address names the socket in the volume both containers mount",
		}}
	}
	info := p.Info
	version := info.VendorVersion
	if version == "" {
		version = "(no vendor version)"
	}
	driver := Result{
		Check:   CheckDriverName,
		Status:  StatusOK,
		Message: fmt.Sprintf("%s %s at %s", info.Name, version, p.Address),
		Details: []string{
			"plugin capabilities: " + joinOrNone(pluginCapabilities(info.Capabilities)),
			"controller capabilities: " + joinOrNone(controllerCapabilities(info.Capabilities)),
		},
	}
	return []Result{driver, fromVerdict(CheckModeName, controllers.NewPlan(info.Capabilities, controllers.Grants{}).ModeVerdict())}
}

// fromVerdict is a decision of the attacher's plan as the verdict of check.
func fromVerdict(check string, v controllers.Verdict) Result {
	return Result{Check: check, Status: v.Status, Message: v.Message, Details: v.Details}
}

func pluginCapabilities(c csi.Capabilities) []string {
	if c.ControllerService {
		return []string{"CONTROLLER_SERVICE"}
	}
	return nil
}

func controllerCapabilities(c csi.Capabilities) []string {
	var out []string
	for _, cc := range []struct {
		on   bool
		name string
	}{
		{c.PublishUnpublish, "PUBLISH_UNPUBLISH_VOLUME"},
		{c.PublishReadonly, "PUBLISH_READONLY"},
		{c.ListVolumes, "LIST_VOLUMES"},
		{c.ListVolumesPublishedNodes, "LIST_VOLUMES_PUBLISHED_NODES"},
		{c.SingleNodeMultiWriter, "SINGLE_NODE_MULTI_WRITER"},
	} {
		if cc.on {
			out = append(out, cc.name)
		}
	}
	return out
}

func joinOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// APIInfo is the outcome of reaching the API server.
type APIInfo struct {
	// Host is the API server URL.
	Host string
	// Version is the server's git version, e.g. v1.37.2.
	Version string
	// User and Groups are who the API server says we are; empty when it
	// could not tell.
	User   string
	Groups []string
	// ConfigErr is set when no client configuration could be loaded.
	ConfigErr error
	// Err is set when the API server could not be reached.
	Err error
}

// CheckAPI is the "api" verdict.
func CheckAPI(a APIInfo) Result {
	r := Result{Check: CheckAPIName}
	switch {
	case a.ConfigErr != nil:
		r.Status = StatusFail
		r.Message = fmt.Sprintf("cannot load the Kubernetes client configuration: %v. "+
			"Pass --kubeconfig, set KUBECONFIG, or run inside the cluster with a service account", a.ConfigErr)
	case a.Err != nil:
		r.Status = StatusFail
		r.Message = fmt.Sprintf("cannot reach the API server at %s: %v. "+
			"Check the kubeconfig's server and credentials, or the pod's network and service account", a.Host, a.Err)
	default:
		r.Status = StatusOK
		r.Message = fmt.Sprintf("Kubernetes %s at %s", a.Version, a.Host)
		if a.User != "" {
			r.Message += ", as user " + a.User
			if len(a.Groups) > 0 {
				r.Message += " (groups " + strings.Join(a.Groups, ", ") + ")"
			}
		}
	}
	return r
}

// CheckRights is the "rights" verdicts (rights.Verdicts): one OK verdict
// when every right is granted, else one FAIL per missing right (or per
// review that failed), a WARN for a missing right the attacher can run
// without. The attacher logs these same verdicts at start (rights.Monitor).
func CheckRights(user string, leaderElection bool, checks []rights.RightCheck) []Result {
	var out []Result
	for _, v := range rights.Verdicts(user, leaderElection, checks) {
		out = append(out, Result{Check: CheckRightsName, Status: v.Status, Message: v.Message})
	}
	return out
}

// checkSecretWatch is the "secret-watch" verdict: whether the attacher
// would watch Secrets, as its plan says (controllers.Plan.SecretWatchVerdict);
// retryMax is --retry-interval-max, the longest wait for a fixed Secret
// without the watch.
func checkSecretWatch(plan controllers.Plan, retryMax time.Duration) Result {
	return fromVerdict(CheckSecretWatchName, plan.SecretWatchVerdict(retryMax))
}

// CheckFetch turns a failed read of the API into a verdict: SKIP when the
// user may not read the objects (the rights check says what the attacher
// itself lacks), FAIL otherwise.
func CheckFetch(check, what string, err error) Result {
	if apierrors.IsForbidden(err) {
		return Result{Check: check, Status: StatusSkip,
			Message: fmt.Sprintf("not allowed to %s: run doctor as a user who may (e.g. with an admin's --kubeconfig)", what)}
	}
	return Result{Check: check, Status: StatusFail, Message: fmt.Sprintf("cannot %s: %v", what, err)}
}

// Skip is a SKIP verdict for a check that could not run.
func Skip(check, why string) Result {
	return Result{Check: check, Status: StatusSkip, Message: why}
}

// limit keeps the first MaxListed items and says how many were left out.
func limit(items []string) []string {
	if len(items) <= MaxListed {
		return items
	}
	out := slices.Clone(items[:MaxListed])
	return append(out, fmt.Sprintf("... and %d more", len(items)-MaxListed))
}

// trim shortens an error message to MaxErrorLength characters, on one line.
func trim(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if utf8.RuneCountInString(msg) <= MaxErrorLength {
		return msg
	}
	runes := []rune(msg)
	return string(runes[:MaxErrorLength]) + "..."
}

// round prints a duration to the second.
func round(d time.Duration) string {
	return d.Round(time.Second).String()
}
