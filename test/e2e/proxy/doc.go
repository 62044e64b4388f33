// Package proxy holds the e2e suite's own fault between an attacher
// replica and the API server: a TCP proxy that blackholes or resets the
// traffic through it, for the partitioned-leader scenarios. The cluster
// those scenarios run in is internal/testbed/cluster, which the cluster
// benchmark shares.
package proxy
