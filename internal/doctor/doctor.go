package doctor

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

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
	return []Result{driver, Mode(info.Capabilities)}
}

// Mode describes how the attacher would run against a driver with caps.
func Mode(caps csi.Capabilities) Result {
	r := Result{Check: CheckModeName, Status: StatusOK}
	switch {
	case !caps.ControllerService:
		r.Message = "trivial: the driver has no CONTROLLER_SERVICE, so VolumeAttachments are marked attached " +
			"without calling it (a driver that needs no attach usually sets attachRequired: false in its CSIDriver instead)"
		return r
	case !caps.PublishUnpublish:
		r.Message = "trivial: the driver lacks PUBLISH_UNPUBLISH_VOLUME, so VolumeAttachments are marked attached " +
			"without calling it (a driver that needs no attach usually sets attachRequired: false in its CSIDriver instead)"
		return r
	}
	r.Message = "full: ControllerPublishVolume on attach, ControllerUnpublishVolume on detach"
	if caps.PublishReadonly {
		r.Details = append(r.Details, "readonly: passed through to ControllerPublishVolume (PUBLISH_READONLY)")
	} else {
		r.Details = append(r.Details, "readonly: never sent, the driver lacks PUBLISH_READONLY (the kubelet still mounts read-only)")
	}
	if caps.SingleNodeMultiWriter {
		r.Details = append(r.Details, "access modes: ReadWriteOnce -> SINGLE_NODE_MULTI_WRITER, "+
			"ReadWriteOncePod -> SINGLE_NODE_SINGLE_WRITER (SINGLE_NODE_MULTI_WRITER)")
	} else {
		r.Details = append(r.Details, "access modes: ReadWriteOnce and ReadWriteOncePod -> SINGLE_NODE_WRITER "+
			"(the driver lacks SINGLE_NODE_MULTI_WRITER)")
	}
	return r
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

// CheckSecretWatch is the "secret-watch" verdict: whether the attacher would
// watch Secrets, given the reviews of SecretWatchRights. Both ways are
// supported setups, so both are OK; the message only says which behaviour
// is in effect. A failed review is a WARN because the attacher treats it as
// "not allowed" and runs without the watch. trivial is set for a driver
// without PUBLISH_UNPUBLISH_VOLUME, which never reads Secrets; retryMax is
// --retry-interval-max, the longest wait for a fixed Secret without the
// watch.
func CheckSecretWatch(trivial bool, retryMax time.Duration, checks []rights.RightCheck) Result {
	r := Result{Check: CheckSecretWatchName}
	if trivial {
		r.Status = StatusSkip
		r.Message = "trivial mode: the attacher never calls ControllerPublishVolume, so it reads no Secrets and never watches them"
		return r
	}
	if len(checks) == 0 {
		r.Status = StatusSkip
		r.Message = "no rights were checked"
		return r
	}
	var errs, denied []string
	for _, c := range checks {
		switch {
		case c.Err != nil:
			errs = append(errs, fmt.Sprintf("could not check %s: %v", c.Right, c.Err))
		case !c.Allowed:
			d := "not granted: " + c.Right.String()
			if c.Reason != "" {
				d += " (" + c.Reason + ")"
			}
			denied = append(denied, d)
		}
	}
	switch {
	case len(errs) > 0:
		r.Status = StatusWarn
		r.Message = fmt.Sprintf("%s. The attacher counts a failed review as no Secret watch: a fixed Secret "+
			"is then picked up at the next retry, within --retry-interval-max (%s)", strings.Join(errs, "; "), retryMax)
	case len(denied) > 0:
		r.Status = StatusOK
		r.Message = fmt.Sprintf("Secret watch off (the shipped RBAC grants get on secrets only, by design): "+
			"a fixed Secret is picked up at the next retry, within --retry-interval-max (%s); apply "+
			"config/rbac/secret_watch_role.yaml and secret_watch_role_binding.yaml for immediate retries", retryMax)
		r.Details = denied
	default:
		r.Status = StatusOK
		r.Message = "Secret watch on: a created or fixed controllerPublish Secret retries its VolumeAttachments at once"
	}
	return r
}

// CheckCSIDriver is the "csidriver" verdict; d is nil when the driver has
// no CSIDriver object.
func CheckCSIDriver(driverName string, d *storagev1.CSIDriver) Result {
	r := Result{Check: CheckCSIDriverName, Status: StatusOK}
	switch {
	case d == nil:
		r.Message = fmt.Sprintf("no CSIDriver object %s: Kubernetes then requires attach, so VolumeAttachments are "+
			"created for its volumes (create the object to make attachRequired explicit)", driverName)
	case d.Spec.AttachRequired == nil:
		r.Message = fmt.Sprintf("CSIDriver %s does not set attachRequired, which defaults to true", driverName)
	case *d.Spec.AttachRequired:
		r.Message = fmt.Sprintf("CSIDriver %s has attachRequired=true", driverName)
	default:
		r.Status = StatusWarn
		r.Message = fmt.Sprintf("CSIDriver %s has attachRequired=false: Kubernetes will never create "+
			"VolumeAttachments for this driver, so the attacher has nothing to do. If the driver needs "+
			"ControllerPublishVolume, recreate the CSIDriver with attachRequired: true (the field is immutable)", driverName)
	}
	return r
}

// CheckCSINodes is the "csinodes" verdict: nodes whose CSINode has no entry
// for the driver cannot have its volumes attached.
func CheckCSINodes(driverName string, nodes []storagev1.CSINode) Result {
	r := Result{Check: CheckCSINodesName}
	if len(nodes) == 0 {
		r.Status = StatusWarn
		r.Message = "there are no CSINodes at all: the kubelets have not registered any node (is this the right cluster?)"
		return r
	}
	var missing []string
	for _, n := range nodes {
		if !slices.ContainsFunc(n.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == driverName }) {
			missing = append(missing, n.Name)
		}
	}
	if len(missing) == 0 {
		r.Status = StatusOK
		r.Message = fmt.Sprintf("all %d CSINodes have driver %s", len(nodes), driverName)
		return r
	}
	slices.Sort(missing)
	r.Status = StatusWarn
	r.Message = fmt.Sprintf("%d of %d CSINodes lack driver %s: volumes cannot be attached to them until the "+
		"driver's node plugin registers there (check its DaemonSet and node-driver-registrar on those nodes; "+
		"ignore nodes the driver does not run on)", len(missing), len(nodes), driverName)
	r.Details = limit(missing)
	return r
}

// CheckVolumeAttachments is the "attachments" verdict over the
// VolumeAttachments of the driver (others in vas are ignored) at time now.
func CheckVolumeAttachments(driverName string, vas []storagev1.VolumeAttachment, now time.Time) Result {
	r := Result{Check: CheckAttachmentsName}
	var failed, deleting, pending []string
	total := 0
	sorted := slices.Clone(vas)
	slices.SortFunc(sorted, func(a, b storagev1.VolumeAttachment) int { return strings.Compare(a.Name, b.Name) })
	for _, va := range sorted {
		if va.Spec.Attacher != driverName {
			continue
		}
		total++
		where := describeVA(&va)
		var age time.Duration
		if va.DeletionTimestamp != nil {
			age = now.Sub(va.DeletionTimestamp.Time)
		}
		longDeleting := va.DeletionTimestamp != nil && age > StuckAfter
		switch {
		case va.Status.AttachError != nil || va.Status.DetachError != nil:
			var parts []string
			if longDeleting {
				parts = append(parts, "deleting for "+round(age))
			}
			if e := va.Status.AttachError; e != nil {
				parts = append(parts, "attach error: "+trim(e.Message))
			}
			if e := va.Status.DetachError; e != nil {
				parts = append(parts, "detach error: "+trim(e.Message))
			}
			failed = append(failed, where+": "+strings.Join(parts, "; "))
		case longDeleting:
			deleting = append(deleting, fmt.Sprintf("%s: deleting for %s, finalizers %s", where, round(age),
				strings.Join(va.Finalizers, ", ")))
		case va.DeletionTimestamp == nil && !va.Status.Attached && now.Sub(va.CreationTimestamp.Time) > StuckAfter:
			pending = append(pending, fmt.Sprintf("%s: not attached after %s and no error", where,
				round(now.Sub(va.CreationTimestamp.Time))))
		}
	}
	if len(failed)+len(deleting)+len(pending) == 0 {
		r.Status = StatusOK
		r.Message = fmt.Sprintf("%d VolumeAttachments of %s, none failing or stuck", total, driverName)
		return r
	}
	r.Status = StatusWarn
	var what []string
	if len(failed) > 0 {
		what = append(what, fmt.Sprintf("%d with errors", len(failed)))
	}
	if len(deleting) > 0 {
		what = append(what, fmt.Sprintf("%d deleting for more than %s", len(deleting), round(StuckAfter)))
	}
	if len(pending) > 0 {
		what = append(what, fmt.Sprintf("%d not attached after %s without an error", len(pending), round(StuckAfter)))
	}
	r.Message = fmt.Sprintf("%d of %d VolumeAttachments of %s need attention: %s.", len(failed)+len(deleting)+len(pending),
		total, driverName, strings.Join(what, ", "))
	if len(failed) > 0 {
		r.Message += " Errors are retried with backoff; fix their cause (driver logs, kubectl describe volumeattachment NAME)."
	}
	if len(deleting) > 0 {
		r.Message += " A detach that never finishes keeps the finalizer: look for its detach errors in the attacher's logs."
	}
	if len(pending) > 0 {
		r.Message += " VolumeAttachments waiting without an error mean no attacher is processing them: is one running and leading?"
	}
	r.Details = limit(slices.Concat(failed, deleting, pending))
	return r
}

// describeVA names a VolumeAttachment with its volume and node.
func describeVA(va *storagev1.VolumeAttachment) string {
	var vol string
	switch {
	case va.Spec.Source.PersistentVolumeName != nil:
		vol = "pv " + *va.Spec.Source.PersistentVolumeName
	case va.Spec.Source.InlineVolumeSpec != nil:
		vol = "inline volume"
	default:
		vol = "no source"
	}
	return fmt.Sprintf("%s (%s, node %s)", va.Name, vol, va.Spec.NodeName)
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

// Summary counts verdicts.
type Summary struct {
	OK   int `json:"ok"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
	Skip int `json:"skip"`
}

// Summarize counts the verdicts of results.
func Summarize(results []Result) Summary {
	var s Summary
	for _, r := range results {
		switch r.Status {
		case StatusOK:
			s.OK++
		case StatusWarn:
			s.Warn++
		case StatusFail:
			s.Fail++
		case StatusSkip:
			s.Skip++
		}
	}
	return s
}

// ExitCode is 1 when a check failed, else 0: warnings alone do not fail.
func (s Summary) ExitCode() int {
	if s.Fail > 0 {
		return ExitFailed
	}
	return ExitOK
}

// String is the summary line.
func (s Summary) String() string {
	verdict := "healthy"
	switch {
	case s.Fail > 0:
		verdict = "BROKEN"
	case s.Warn > 0:
		verdict = "healthy with warnings"
	}
	return fmt.Sprintf("doctor: %s: %d ok, %d warnings, %d failed, %d skipped", verdict, s.OK, s.Warn, s.Fail, s.Skip)
}
