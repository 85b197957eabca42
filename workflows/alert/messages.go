// Package alert is the delivery workflow of one alert event: it plans the event's deliveries (one per e-mail
// address and webhook its team's rules name) and makes each as an activity that Temporal retries with back-off,
// so a delivery survives the crash of any process and a receiver that fails for a while. The workflow ID
// derives from the event (alert/<eventId>), so an event is delivered once however often it is dispatched.
package alert

// WorkflowName is the registered name of Deliver; histories depend on it, so it never changes.
const WorkflowName = "alert.deliver"

// Params start a delivery.
type Params struct {
	EventID string
	TeamID  string
}

// Result counts what happened to the event's deliveries.
type Result struct {
	Delivered, Failed int
}

// WorkflowID derives the workflow ID from the event ID.
func WorkflowID(eventID string) string { return "alert/" + eventID }
