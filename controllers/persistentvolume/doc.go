// Package persistentvolume releases PersistentVolumes: it removes the
// attacher's finalizer from a PersistentVolume that is being deleted, or
// whose CSI migration was rolled back, once no VolumeAttachment names it.
// The finalizer is added by the attach sequence
// (controllers/volumeattachment), before ControllerPublishVolume.
package persistentvolume
