// Package report shapes how a failure is shown to users: the Event (one
// series per VolumeAttachment, however often it fails) and the messages
// written to status.attachError / detachError and Event notes, cut to the
// API server's limits without losing the gRPC code. The full error always
// goes to the log.
package report
