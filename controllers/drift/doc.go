// Package drift runs the ListVolumes pass: every --reconcile-sync it
// compares the driver's own list of published volumes with the
// VolumeAttachments, and hands the ones that disagree (a volume detached
// behind the attacher's back, or one still published after its detach) to
// the VolumeAttachment controller through forcesync, with a Warning Event
// and a drift metric. It reads only; the controller makes the calls.
package drift
