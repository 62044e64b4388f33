package fake

import (
	"maps"
	"slices"
	"strings"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
)

// This file holds what the driver remembers beyond its publications: the
// history a test checks the attacher against (a single-node volume
// published on two nodes at once, a publish repeated for a pair that was
// already published) and the State that survives a restart of the driver's
// process, as a real storage backend's attachments do.

// Overlap records a volume published to a node while a single-node access
// mode said it could be on one node only, and it was already published to
// another. A correct attacher behind kube-controller-manager never causes
// one: the old attachment is unpublished before the new one is published.
type Overlap struct {
	VolumeID string `json:"volumeID"`
	// Nodes are the node IDs the volume was published to after the call,
	// sorted.
	Nodes []string `json:"nodes"`
	// Mode is the access mode of the publish that made the overlap.
	Mode string    `json:"mode"`
	At   time.Time `json:"at"`
}

// State is everything the driver must keep across a restart of its
// process: the publications and the history. Save it with State and load
// it into a new driver with Restore.
type State struct {
	// Published maps each published volume ID to its sorted node IDs.
	Published map[string][]string `json:"published"`
	Overlaps  []Overlap           `json:"overlaps,omitempty"`
	// RepeatedPublishes counts, per volume ID, the successful publishes of
	// a volume to a node it was already published to. The CSI spec makes
	// them harmless, but each is a call the attacher did not need to make.
	RepeatedPublishes map[string]int `json:"repeatedPublishes,omitempty"`
}

// CallRecord is a Call as one line of a call log (hack/fakedriver
// --calls-file), for a test that reads the driver's calls from another
// process. Secrets are counted, never copied.
type CallRecord struct {
	Method        string            `json:"method"`
	VolumeID      string            `json:"volumeID,omitempty"`
	NodeID        string            `json:"nodeID,omitempty"`
	Readonly      bool              `json:"readonly,omitempty"`
	AccessMode    string            `json:"accessMode,omitempty"`
	Block         bool              `json:"block,omitempty"`
	FSType        string            `json:"fsType,omitempty"`
	Secrets       int               `json:"secrets,omitempty"`
	VolumeContext map[string]string `json:"volumeContext,omitempty"`
	// Code is the gRPC code's name, "OK" for success.
	Code  string    `json:"code"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Caller is the process ID of the client.
	Caller int `json:"caller,omitempty"`
}

// Record returns the call's CallRecord.
func (c Call) Record() CallRecord {
	r := CallRecord{
		Method: c.Method, VolumeID: c.VolumeID, NodeID: c.NodeID, Readonly: c.ReadOnly,
		Secrets: len(c.Secrets), VolumeContext: c.VolumeContext,
		Code: c.Code.String(), Start: c.Start, End: c.End, Caller: c.Caller,
	}
	if c.Capability != nil {
		r.AccessMode = c.Capability.GetAccessMode().GetMode().String()
		r.Block = c.Capability.GetBlock() != nil
		r.FSType = c.Capability.GetMount().GetFsType()
	}
	return r
}

// singleNode reports whether an access mode allows the volume on one node
// only.
func singleNode(mode csipb.VolumeCapability_AccessMode_Mode) bool {
	switch mode {
	case csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		return true
	}
	return false
}

// notePublish updates the history for a publish of id to node with mode,
// before the publication is added. Callers hold d.mu.
func (d *Driver) notePublish(id, node string, mode csipb.VolumeCapability_AccessMode_Mode) {
	nodes := d.volumes[id]
	if _, ok := nodes[node]; ok {
		d.repeated[id]++
		return
	}
	if len(nodes) > 0 && singleNode(mode) {
		all := append(slices.Collect(maps.Keys(nodes)), node)
		slices.Sort(all)
		d.overlaps = append(d.overlaps, Overlap{VolumeID: id, Nodes: all, Mode: mode.String(), At: time.Now()})
	}
}

// Overlaps returns every overlap seen since New (or restored), oldest
// first.
func (d *Driver) Overlaps() []Overlap {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.overlaps)
}

// RepeatedPublishes returns, per volume ID, how many publishes found the
// volume already published to the same node.
func (d *Driver) RepeatedPublishes() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.repeated)
}

// State returns a copy of the driver's publications and history.
func (d *Driver) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := State{Published: map[string][]string{}, Overlaps: slices.Clone(d.overlaps), RepeatedPublishes: maps.Clone(d.repeated)}
	for vol, nodes := range d.volumes {
		if len(nodes) > 0 {
			s.Published[vol] = sortedNodes(nodes)
		}
	}
	return s
}

// Restore replaces the driver's publications and history with s, as a
// backend that kept them while the driver's process restarted.
func (d *Driver) Restore(s State) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.volumes = map[string]map[string]struct{}{}
	for vol, nodes := range s.Published {
		set := map[string]struct{}{}
		for _, n := range nodes {
			set[n] = struct{}{}
		}
		d.volumes[vol] = set
	}
	d.overlaps = slices.Clone(s.Overlaps)
	d.repeated = maps.Clone(s.RepeatedPublishes)
	if d.repeated == nil {
		d.repeated = map[string]int{}
	}
}

// GCEPDVolumeID is a Config.CanonicalVolumeID for a driver named
// pd.csi.storage.gke.io: like the real GCE PD driver, it keeps a disk
// under its complete ID, taking the project from the node ID
// (projects/P/zones/Z/instances/N) where the handle of a migrated in-tree
// disk says UNSPECIFIED (projects/UNSPECIFIED/zones/Z/disks/D ->
// projects/P/zones/Z/disks/D). IDs of other shapes are kept as they are.
func GCEPDVolumeID(volumeID, nodeID string) string {
	node, disk := strings.Split(nodeID, "/"), strings.Split(volumeID, "/")
	if len(node) != 6 || len(disk) != 6 || node[0] != "projects" || disk[0] != "projects" || disk[1] != "UNSPECIFIED" {
		return volumeID
	}
	return strings.Join([]string{"projects", node[1], "zones", disk[3], "disks", disk[5]}, "/")
}
