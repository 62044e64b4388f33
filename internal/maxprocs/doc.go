// Package maxprocs implements --automaxprocs: GOMAXPROCS from the
// container's CPU limit.
//
// Since Go 1.25 the runtime does this by itself (and follows later changes
// of the limit) for modules that declare go >= 1.25, as this one does, unless
// GOMAXPROCS is set in the environment or GODEBUG=updatemaxprocs=0,
// containermaxprocs=0 turns it off. So the attacher follows the CPU limit
// with or without the flag. The flag makes it certain and visible: Apply
// reads the limit from the cgroup (v2 cpu.max, else v1
// cpu.cfs_quota_us/cpu.cfs_period_us), sets GOMAXPROCS to it when the
// runtime has not (GODEBUG), and says what it found. A GOMAXPROCS
// environment variable still wins, as with the reference's automaxprocs.
package maxprocs
