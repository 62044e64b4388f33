// Package queue holds what the attacher's controllers share about their
// work queues: the controller names, the reference's queue names on the
// workqueue_* metrics, the priority queue and the priority of each object
// by its state (priority.go), and the retry backoff.
package queue
