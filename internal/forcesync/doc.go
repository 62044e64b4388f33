// Package forcesync is the one channel between the ListVolumes drift pass
// and the VolumeAttachment controller: the pass
// marks an attachment the driver disagrees with and queues it; the
// controller consumes the mark in its next reconcile and calls the driver
// although the attachment's status looks settled. Neither side reaches into
// the other.
package forcesync
