package fake

import (
	"context"
	"maps"
	"slices"
	"strconv"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// This file holds the driver's plain CSI semantics. Records, latency and
// injected faults are applied around these handlers by Driver.intercept.

// GetPluginInfo returns the configured name and vendor version.
func (d *Driver) GetPluginInfo(context.Context, *csipb.GetPluginInfoRequest) (*csipb.GetPluginInfoResponse, error) {
	return &csipb.GetPluginInfoResponse{Name: d.cfg.Name, VendorVersion: d.cfg.VendorVersion}, nil
}

// GetPluginCapabilities announces CONTROLLER_SERVICE when configured.
func (d *Driver) GetPluginCapabilities(context.Context, *csipb.GetPluginCapabilitiesRequest) (*csipb.GetPluginCapabilitiesResponse, error) {
	resp := &csipb.GetPluginCapabilitiesResponse{}
	if d.cfg.ControllerService {
		resp.Capabilities = append(resp.Capabilities, &csipb.PluginCapability{
			Type: &csipb.PluginCapability_Service_{Service: &csipb.PluginCapability_Service{
				Type: csipb.PluginCapability_Service_CONTROLLER_SERVICE,
			}},
		})
	}
	return resp, nil
}

// Probe reports the readiness set with SetReady.
func (d *Driver) Probe(context.Context, *csipb.ProbeRequest) (*csipb.ProbeResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &csipb.ProbeResponse{Ready: wrapperspb.Bool(d.ready)}, nil
}

// ControllerGetCapabilities announces the configured controller capabilities.
func (d *Driver) ControllerGetCapabilities(context.Context, *csipb.ControllerGetCapabilitiesRequest) (*csipb.ControllerGetCapabilitiesResponse, error) {
	resp := &csipb.ControllerGetCapabilitiesResponse{}
	add := func(on bool, t csipb.ControllerServiceCapability_RPC_Type) {
		if !on {
			return
		}
		resp.Capabilities = append(resp.Capabilities, &csipb.ControllerServiceCapability{
			Type: &csipb.ControllerServiceCapability_Rpc{Rpc: &csipb.ControllerServiceCapability_RPC{Type: t}},
		})
	}
	add(d.cfg.PublishUnpublish, csipb.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME)
	add(d.cfg.PublishReadonly, csipb.ControllerServiceCapability_RPC_PUBLISH_READONLY)
	add(d.cfg.SingleNodeMultiWriter, csipb.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER)
	add(d.cfg.ListVolumes, csipb.ControllerServiceCapability_RPC_LIST_VOLUMES)
	add(d.cfg.ListVolumesPublishedNodes, csipb.ControllerServiceCapability_RPC_LIST_VOLUMES_PUBLISHED_NODES)
	return resp, nil
}

// ControllerPublishVolume publishes any non-empty volume ID to any node,
// idempotently, and returns the volume's publish context.
func (d *Driver) ControllerPublishVolume(_ context.Context, req *csipb.ControllerPublishVolumeRequest) (*csipb.ControllerPublishVolumeResponse, error) {
	if !d.cfg.PublishUnpublish {
		return nil, status.Error(codes.Unimplemented, "ControllerPublishVolume is not supported: PUBLISH_UNPUBLISH_VOLUME is off")
	}
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	case req.GetNodeId() == "":
		return nil, status.Error(codes.InvalidArgument, "node_id is required")
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume_capability is required")
	}
	id := d.canonical(req.GetVolumeId(), req.GetNodeId())
	d.mu.Lock()
	defer d.mu.Unlock()
	d.notePublish(id, req.GetNodeId(), req.GetVolumeCapability().GetAccessMode().GetMode())
	nodes := d.volumes[id]
	if nodes == nil {
		nodes = map[string]struct{}{}
		d.volumes[id] = nodes
	}
	nodes[req.GetNodeId()] = struct{}{}
	pc, ok := d.publishContext[req.GetVolumeId()]
	if !ok {
		pc = map[string]string{"devicePath": "/dev/fake/" + req.GetVolumeId()}
	}
	return &csipb.ControllerPublishVolumeResponse{PublishContext: maps.Clone(pc)}, nil
}

// ControllerUnpublishVolume removes a publication. Unknown volumes, nodes
// and publications are success, as the CSI spec requires. An empty node ID
// removes the volume from every node, again per the spec.
func (d *Driver) ControllerUnpublishVolume(_ context.Context, req *csipb.ControllerUnpublishVolumeRequest) (*csipb.ControllerUnpublishVolumeResponse, error) {
	if !d.cfg.PublishUnpublish {
		return nil, status.Error(codes.Unimplemented, "ControllerUnpublishVolume is not supported: PUBLISH_UNPUBLISH_VOLUME is off")
	}
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	id := d.canonical(req.GetVolumeId(), req.GetNodeId())
	d.mu.Lock()
	defer d.mu.Unlock()
	if nodes, ok := d.volumes[id]; ok {
		if req.GetNodeId() == "" {
			clear(nodes)
		} else {
			delete(nodes, req.GetNodeId())
		}
	}
	return &csipb.ControllerUnpublishVolumeResponse{}, nil
}

// ListVolumes pages through every volume ever published, sorted by ID.
// starting_token is the decimal index of the first entry.
func (d *Driver) ListVolumes(_ context.Context, req *csipb.ListVolumesRequest) (*csipb.ListVolumesResponse, error) {
	if !d.cfg.ListVolumes {
		return nil, status.Error(codes.Unimplemented, "ListVolumes is not supported: LIST_VOLUMES is off")
	}
	if req.GetMaxEntries() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "max_entries must not be negative, got %d", req.GetMaxEntries())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := slices.Sorted(maps.Keys(d.volumes))
	start := 0
	if tok := req.GetStartingToken(); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(ids) {
			return nil, status.Errorf(codes.Aborted, "invalid starting_token %q", tok)
		}
		start = n
	}
	end := len(ids)
	if m := int(req.GetMaxEntries()); m > 0 && start+m < end {
		end = start + m
	}
	resp := &csipb.ListVolumesResponse{}
	for _, id := range ids[start:end] {
		entry := &csipb.ListVolumesResponse_Entry{Volume: &csipb.Volume{VolumeId: id}}
		if d.cfg.ListVolumesPublishedNodes {
			entry.Status = &csipb.ListVolumesResponse_VolumeStatus{PublishedNodeIds: sortedNodes(d.volumes[id])}
		}
		resp.Entries = append(resp.Entries, entry)
	}
	if end < len(ids) {
		resp.NextToken = strconv.Itoa(end)
	}
	return resp, nil
}
