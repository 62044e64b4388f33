// Package doctor implements `csi-attacher doctor`: a one-shot check of
// everything the attacher depends on, with a verdict per check and an exit
// code, so that an operator can tell a broken driver, missing RBAC, a
// misconfigured CSIDriver or a node without the driver from a plain backlog
// without reading logs.
//
// The subcommand takes the attacher's own flags (parsed by
// internal/options, so the container's arguments can be reused as they are)
// plus:
//
//	--output=text|json   text (default): one line per verdict; json: one
//	                     document for scripts
//	--as=USER            impersonate USER (for example
//	                     system:serviceaccount:kube-system:csi-attacher)
//	                     for every API request, to check the attacher's
//	                     rights from an admin's kubeconfig
//
// Checks, in order:
//
//	driver       connect to --csi-address (waiting at most twice
//	             CSI_PROBE_TIMEOUT), print the name, vendor version and
//	             the capabilities the attacher reads
//	mode         the mode the attacher would run in: full or trivial,
//	             readonly passthrough, access-mode mapping
//	api          reach the API server and say who we are
//	rights       one SelfSubjectAccessReview per API right the attacher
//	             needs (read from config/rbac, embedded in the binary);
//	             FAIL per missing right, WARN per missing right it can
//	             run without (get secrets, Events: the reference's RBAC
//	             lacks them). The attacher runs the
//	             same check at start (rights.Monitor): the same verdicts in
//	             its log, and /readyz false while a FAIL stands
//	secret-watch whether the attacher may list and watch Secrets in all
//	             namespaces, and so retries attachments at once when their
//	             Secret is fixed; OK either way (the shipped RBAC grants
//	             get only, by design)
//	csidriver    the CSIDriver object of the driver: attachRequired=false
//	             means Kubernetes never creates VolumeAttachments for it
//	csinodes     CSINodes without the driver: VolumeAttachments to those
//	             nodes cannot be attached
//	attachments  VolumeAttachments of the driver with an attach or detach
//	             error, deleting for more than 10 minutes, or not attached
//	             after 10 minutes without any error
//
// Each verdict is OK, WARN, FAIL or SKIP (the check could not run: the
// driver name is unknown, or the user may not read the objects). The exit
// code is 0 when nothing failed (warnings alone are fine), 1 when a check
// failed and 2 on bad flags.
//
// The checks themselves are pure functions of the fetched data (CheckDriver,
// CheckRights, CheckCSIDriver, CheckCSINodes, CheckVolumeAttachments...);
// Run only fetches and prints. The mode and secret-watch verdicts are the
// attacher's own plan (controllers.NewPlan, which main.go runs by), in
// its words, so the doctor cannot say otherwise than the attacher does.
package doctor
