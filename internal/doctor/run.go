package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/csi-attacher/csi-attacher/controllers"
	"github.com/csi-attacher/csi-attacher/internal/csi"
	"github.com/csi-attacher/csi-attacher/internal/leader"
	"github.com/csi-attacher/csi-attacher/internal/options"
	"github.com/csi-attacher/csi-attacher/internal/rights"
)

// Output formats of --output.
const (
	OutputText = "text"
	OutputJSON = "json"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitBadArgs = 2
)

// apiTimeout bounds each API request.
const apiTimeout = 15 * time.Second

// listPage is the page size of the CSINode and VolumeAttachment lists.
const listPage = 500

// Main runs `csi-attacher doctor` with args (after "doctor") and returns the
// exit code. It reads the process environment and files, and stops early on
// SIGINT or SIGTERM.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, os.Getenv, os.ReadFile, stdout, stderr)
}

// Report is the --output=json document.
type Report struct {
	Driver   *DriverReport `json:"driver,omitempty"`
	Results  []Result      `json:"results"`
	Summary  Summary       `json:"summary"`
	ExitCode int           `json:"exitCode"`
}

// DriverReport is the driver's identity in the JSON report.
type DriverReport struct {
	Name                   string   `json:"name"`
	VendorVersion          string   `json:"vendorVersion"`
	Address                string   `json:"address"`
	PluginCapabilities     []string `json:"pluginCapabilities"`
	ControllerCapabilities []string `json:"controllerCapabilities"`
	Mode                   string   `json:"mode"`
}

// doctorFlags are the flags doctor adds to the attacher's.
type doctorFlags struct {
	output string
	as     string
}

// splitFlags takes doctor's own flags out of args and returns the rest for
// options.Parse. Both -name and --name, "=value" and a separate value work,
// as with the flag package.
func splitFlags(args []string) (doctorFlags, []string, error) {
	f := doctorFlags{output: OutputText}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (name != "output" && name != "o" && name != "as") {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return f, nil, fmt.Errorf("flag needs an argument: %s", a)
			}
			i++
			value = args[i]
		}
		switch name {
		case "output", "o":
			if value != OutputText && value != OutputJSON {
				return f, nil, fmt.Errorf("invalid value %q for --output: want text or json", value)
			}
			f.output = value
		case "as":
			if value == "" {
				return f, nil, errors.New("--as needs a user name")
			}
			f.as = value
		}
	}
	return f, rest, nil
}

// usage writes doctor's help.
func usage(w io.Writer) {
	_, _ = fmt.Fprint(w, `Usage: csi-attacher doctor --csi-address=ADDRESS [flags]

Checks the CSI driver, the attacher's API rights, whether it may watch
Secrets, the CSIDriver object, the CSINodes and the VolumeAttachments of the
driver, and prints one verdict per line (OK, WARN, FAIL, SKIP) and a summary.
Exit code: 0 when nothing failed (warnings alone are fine), 1 when a check
failed, 2 on bad flags.

Doctor flags:
  --output=text|json
    	Output format (default text). Also -o.
  --as=USER
    	Impersonate USER for every API request, e.g.
    	system:serviceaccount:kube-system:csi-attacher, to check the
    	attacher's rights from an admin's kubeconfig.

It also takes every flag of the attacher, so the container's arguments can be
reused as they are; it uses --csi-address, --kubeconfig, --leader-election and
--leader-election-namespace, and waits for the driver at most twice
CSI_PROBE_TIMEOUT.

`)
	options.Usage(w)
}

// isHelp reports whether args ask for help before the first stray word.
func isHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "help":
			return true
		case "--":
			return false
		}
	}
	return false
}

// Run is Main with the environment and the file system passed in (getenv
// and readFile stand for os.Getenv and os.ReadFile, as in options.Parse).
func Run(ctx context.Context, args []string, getenv func(string) string, readFile func(string) ([]byte, error),
	stdout, stderr io.Writer) int {
	if isHelp(args) {
		usage(stdout)
		return ExitOK
	}
	df, rest, err := splitFlags(args)
	if err == nil {
		var opts *options.Options
		var ep csi.Endpoint
		opts, err = options.Parse(rest, getenv, readFile)
		if err == nil {
			ep, err = csi.ParseAddress(opts.CSIAddress)
			if err != nil {
				err = fmt.Errorf("--csi-address: %w", err)
			}
		}
		if err == nil {
			return run(ctx, opts, ep, df, stdout)
		}
	}
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return ExitOK
	}
	_, _ = fmt.Fprintf(stderr, "csi-attacher doctor: %v\n", err)
	_, _ = fmt.Fprintln(stderr, "Run 'csi-attacher doctor --help' for the list of flags.")
	return ExitBadArgs
}

// printer collects verdicts and, in text mode, prints them as they come.
type printer struct {
	w       io.Writer
	json    bool
	results []Result
}

func (p *printer) add(rs ...Result) {
	p.results = append(p.results, rs...)
	if p.json {
		return
	}
	for _, r := range rs {
		_, _ = fmt.Fprintln(p.w, r.String())
		for _, d := range r.Details {
			_, _ = fmt.Fprintf(p.w, "       %s\n", d)
		}
	}
}

// run performs the checks with validated options.
func run(ctx context.Context, opts *options.Options, ep csi.Endpoint, df doctorFlags, stdout io.Writer) int {
	p := &printer{w: stdout, json: df.output == OutputJSON}
	report := Report{}

	// 1. The driver.
	probe, driver := connectDriver(ctx, opts, ep)
	p.add(CheckDriver(probe)...)
	driverName := ""
	if probe.Info != nil {
		driverName = probe.Info.Name
		caps := probe.Info.Capabilities
		report.Driver = &DriverReport{
			Name:                   probe.Info.Name,
			VendorVersion:          probe.Info.VendorVersion,
			Address:                probe.Address,
			PluginCapabilities:     nonNil(pluginCapabilities(caps)),
			ControllerCapabilities: nonNil(controllerCapabilities(caps)),
			Mode:                   string(controllers.NewPlan(caps, controllers.Grants{}).Mode),
		}
	}
	if driver != nil {
		_ = driver.Close()
	}

	// 2. The API server and our rights.
	api, clientset := connectAPI(ctx, opts, df.as)
	p.add(CheckAPI(api))
	if clientset == nil {
		why := "the API server is not reachable"
		if api.ConfigErr != nil {
			why = "there is no Kubernetes client configuration"
		}
		p.add(Skip(CheckRightsName, why), Skip(CheckSecretWatchName, why))
		if !opts.LeaderElection {
			p.add(Skip(CheckLeaderElectionName, why))
		}
		p.add(Skip(CheckCSIDriverName, why), Skip(CheckCSINodesName, why), Skip(CheckAttachmentsName, why))
		return p.finish(report)
	}
	leaseName := ""
	if driverName != "" {
		leaseName = leader.LeaseName(driverName)
	}
	review := clientset.AuthorizationV1().SelfSubjectAccessReviews().Create
	if required, err := rights.RequiredRights(opts.LeaderElection, opts.LeaderElectionNamespaceResolved, leaseName); err != nil {
		p.add(Result{Check: CheckRightsName, Status: StatusFail, Message: err.Error()})
	} else {
		p.add(CheckRights(api.User, opts.LeaderElection, rights.ReviewRights(ctx, review, required))...)
	}
	// The attacher's plan, as it would run. When the driver is unknown the
	// Secret watch is judged as for a driver that publishes, the only kind
	// that reads Secrets: the rights do not depend on the driver.
	caps := csi.Capabilities{ControllerService: true, PublishUnpublish: true}
	if probe.Info != nil {
		caps = probe.Info.Capabilities
	}
	plan := controllers.NewPlan(caps, controllers.ReviewGrants(ctx, review, caps))
	p.add(checkSecretWatch(plan, opts.RetryIntervalMax))

	// 3-5. The objects of the driver.
	if driverName == "" {
		why := "the driver's name is unknown because the driver check failed"
		if !opts.LeaderElection {
			p.add(Skip(CheckLeaderElectionName, why))
		}
		p.add(Skip(CheckCSIDriverName, why), Skip(CheckCSINodesName, why), Skip(CheckAttachmentsName, why))
		return p.finish(report)
	}
	if !opts.LeaderElection {
		// Without leader election, another active attacher of the driver
		// would attach and detach the same volumes: the one that holds
		// the driver's Lease can be seen.
		ref := leader.LeaseRef{Driver: driverName, Namespace: opts.LeaderElectionNamespaceResolved, Name: leaseName}
		lease, err := clientset.CoordinationV1().Leases(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		p.add(CheckLeaderless(ref, lease, err, time.Now()))
	}
	p.add(checkCSIDriver(ctx, clientset, driverName))
	if nodes, err := listCSINodes(ctx, clientset); err != nil {
		p.add(CheckFetch(CheckCSINodesName, "list CSINodes", err))
	} else {
		p.add(CheckCSINodes(driverName, nodes))
	}
	if vas, err := listVolumeAttachments(ctx, clientset); err != nil {
		p.add(CheckFetch(CheckAttachmentsName, "list VolumeAttachments", err))
	} else {
		p.add(CheckVolumeAttachments(driverName, vas, time.Now()))
	}
	return p.finish(report)
}

// finish prints the summary (text) or the whole report (JSON) and returns
// the exit code.
func (p *printer) finish(report Report) int {
	s := Summarize(p.results)
	report.Results = p.results
	report.Summary = s
	report.ExitCode = s.ExitCode()
	if p.json {
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(report)
	} else {
		_, _ = fmt.Fprintln(p.w, s.String())
	}
	return report.ExitCode
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// driverWait is how long doctor waits for the driver: twice the probe
// timeout (10s by default), so that one slow Probe is retried once.
// options.Parse has already rejected a probe timeout that is not positive.
func driverWait(opts *options.Options) time.Duration {
	return 2 * opts.ProbeTimeout
}

// connectDriver connects to the driver at ep (--csi-address, parsed) within
// driverWait.
func connectDriver(ctx context.Context, opts *options.Options, ep csi.Endpoint) (DriverProbe, *csi.Client) {
	probe := DriverProbe{Address: ep.String(), Wait: driverWait(opts)}
	if ep.Network == "unix" {
		if _, err := os.Stat(ep.Address); errors.Is(err, os.ErrNotExist) {
			probe.SocketMissing = true
		}
		// Judged by the permission bits, which is what the attacher logs
		// too; the connection below still decides (an ACL may allow more).
		probe.SocketAccess = csi.CheckSocketAccess(ep.Address, csi.CurrentIdentity())
	}
	ctx, cancel := context.WithTimeout(ctx, probe.Wait)
	defer cancel()
	client, err := csi.Connect(ctx, csi.Options{
		Address:      opts.CSIAddress,
		Timeout:      opts.Timeout,
		ProbeTimeout: opts.ProbeTimeout,
	})
	if err != nil {
		probe.Err = err
		return probe, nil
	}
	probe.SocketMissing = false
	probe.SocketAccess = nil
	probe.Info = &DriverInfo{
		Name:          client.DriverName(),
		VendorVersion: client.VendorVersion(),
		Capabilities:  client.Capabilities(),
	}
	return probe, client
}

// restConfig loads the client configuration as the attacher does:
// --kubeconfig, else (controller-runtime's rules) KUBECONFIG, in-cluster or
// ~/.kube/config.
func restConfig(opts *options.Options, as string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if opts.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
	} else {
		cfg, err = ctrl.GetConfig()
	}
	if err != nil {
		return nil, err
	}
	cfg.Timeout = apiTimeout
	cfg.UserAgent = "csi-attacher-doctor"
	cfg.QPS, cfg.Burst = 50, 100
	if as != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: as}
	}
	return cfg, nil
}

// connectAPI loads the configuration, reads the server version and asks
// who we are. The clientset is nil when the server is unusable.
func connectAPI(ctx context.Context, opts *options.Options, as string) (APIInfo, kubernetes.Interface) {
	var info APIInfo
	cfg, err := restConfig(opts, as)
	if err != nil {
		info.ConfigErr = err
		return info, nil
	}
	info.Host = cfg.Host
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		info.ConfigErr = err
		return info, nil
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		info.Err = err
		return info, nil
	}
	info.Version = v.GitVersion
	if ssr, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{}); err == nil {
		info.User = ssr.Status.UserInfo.Username
		info.Groups = ssr.Status.UserInfo.Groups
	} else if as != "" {
		info.User = as
	}
	return info, cs
}

func checkCSIDriver(ctx context.Context, cs kubernetes.Interface, name string) Result {
	d, err := cs.StorageV1().CSIDrivers().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return CheckCSIDriver(name, nil)
	case err != nil:
		return CheckFetch(CheckCSIDriverName, "get CSIDriver "+name, err)
	}
	return CheckCSIDriver(name, d)
}

func listCSINodes(ctx context.Context, cs kubernetes.Interface) ([]storagev1.CSINode, error) {
	return listAll(ctx, cs.StorageV1().CSINodes().List,
		func(l *storagev1.CSINodeList) ([]storagev1.CSINode, string) { return l.Items, l.Continue })
}

func listVolumeAttachments(ctx context.Context, cs kubernetes.Interface) ([]storagev1.VolumeAttachment, error) {
	return listAll(ctx, cs.StorageV1().VolumeAttachments().List,
		func(l *storagev1.VolumeAttachmentList) ([]storagev1.VolumeAttachment, string) {
			return l.Items, l.Continue
		})
}

// listAll pages through a list call, listPage objects at a time, so a large
// cluster is never read in one response.
func listAll[T any, L any](ctx context.Context, list func(context.Context, metav1.ListOptions) (L, error), page func(L) ([]T, string)) ([]T, error) {
	var out []T
	opts := metav1.ListOptions{Limit: listPage}
	for {
		l, err := list(ctx, opts)
		if err != nil {
			return nil, err
		}
		items, next := page(l)
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		opts.Continue = next
	}
}
