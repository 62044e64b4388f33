// Package patch builds the RFC 6902 JSON patches the attacher sends for
// metadata it shares with other controllers: finalizers and annotations on
// VolumeAttachments and PersistentVolumes.
//
// A JSON merge patch of metadata.finalizers replaces the whole list, so a
// writer working from a stale copy drops or resurrects another controller's
// finalizer. The patches here only append, or remove an element after a
// "test" op has checked it is still where the copy said, so a concurrent
// change makes the API server refuse the patch (422 Invalid) instead of
// losing data; the caller retries from a fresh copy.
package patch
