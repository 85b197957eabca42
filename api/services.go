package api

import (
	"github.com/flowyard/flowyard/services"
)

// flowServices are the services the handlers call for the flows the API shares with the worker's activities and the
// platform's crash recovery (package services): handlers decode, authorize, call one and answer.
type flowServices struct {
	instances     *services.Instances
	rollouts      *services.Rollouts
	users         *services.Users
	promotions    *services.Promotions
	stackMoves    *services.StackMoves
	deviceTargets *services.DeviceTargets
}

func newFlowServices(s *Server, d Deps) flowServices {
	ops := &services.Operations{Store: d.Store, MaxInFlight: s.limiter.MaxTeamOperations, Log: d.Log}
	f := flowServices{instances: &services.Instances{Operations: ops, Sealer: d.Sealer}}
	if d.Instances != nil {
		f.instances.Runner = d.Instances
	}
	f.rollouts, f.users = &services.Rollouts{Operations: ops}, &services.Users{Store: d.Store}
	if d.Rollouts != nil {
		f.rollouts.Runner = d.Rollouts
	}
	f.promotions = &services.Promotions{Operations: ops}
	if d.Pipelines != nil {
		f.promotions.Runner = d.Pipelines
	}
	f.stackMoves = &services.StackMoves{Operations: ops}
	if d.StackMoves != nil {
		f.stackMoves.Runner = d.StackMoves
	}
	f.deviceTargets = &services.DeviceTargets{Store: d.Store, Devices: s.devices, Log: d.Log}
	if d.Broker != nil { // a nil broker in the interface would not be nil
		f.deviceTargets.Notifier = d.Broker
	}
	if d.Billing != nil { // a nil *billing.Service in the interface would not be nil
		f.instances.Billing = d.Billing
	}
	return f
}

// userID is who a service records as acting: the caller's user, or "" for none.
func (c *caller) userID() string {
	if c == nil || c.user == nil {
		return ""
	}
	return c.user.ID
}
