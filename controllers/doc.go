// Package controllers wires csi-attacher's controllers into one
// controller-runtime Manager for one CSI driver, in two steps that main.go,
// the doctor and the envtest suite all take:
//
//   - NewPlan (plan.go), a pure function, decides once what runs from the
//     driver's capabilities and the rights the API server grants: full or
//     trivial mode, the drift pass or not, the Secret watch or not. It
//     also holds the sentences the start-up log and the doctor say it in.
//   - Setup (setup.go) applies a Plan. For a driver with
//     ControllerPublishVolume: the VolumeAttachment controller
//     (controllers/volumeattachment), the PersistentVolume controller
//     (controllers/persistentvolume) and, when the plan runs it, the drift
//     pass (controllers/drift). For a driver without it: one controller
//     that marks attachments attached.
//
// They share one CSI client, the cache set up by internal/cache, and the
// freshness tracker. docs/architecture.md maps each rule to its file.
package controllers
