package billing

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/flowyard/flowyard/domain"
)

// FuzzStripeWebhook feeds arbitrary bodies to the webhook reader, signed with the endpoint's secret at some
// age or carrying an arbitrary Stripe-Signature header: it never panics, refuses with client errors only,
// never accepts a body it did not see signed within Stripe's tolerance, and reads the id and type the body
// holds. Seeds: testdata/fuzz/FuzzStripeWebhook (Stripe events as stripe-mock and Stripe send them).
func FuzzStripeWebhook(f *testing.F) {
	const secret = "whsec_fuzz_0123456789abcdef"
	s := &Service{WebhookSecret: secret}
	f.Add([]byte(`{"id":"evt_1","object":"event","type":"invoice.paid","created":1,"data":{"object":{"id":"in_1","customer":"cus_1"}}}`), true, int64(0), "")
	f.Add([]byte(`{"id":"evt_1","type":"invoice.paid","data":{"object":{}}}`), false, int64(0), "t=1,v1=00")
	f.Fuzz(func(t *testing.T, payload []byte, signed bool, ageSeconds int64, header string) {
		age := time.Duration(ageSeconds%3600) * time.Second
		if signed {
			header = webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: time.Now().Add(-age)}).Header
		}
		ev, _, err := s.readWebhook(payload, header)
		if err != nil {
			if !domain.IsClientError(err) {
				t.Fatalf("a bad webhook is not a client error: %T %v", err, err)
			}
			return
		}
		if !signed {
			t.Fatalf("accepted a webhook with a signature made without the secret: %q", header)
		}
		if age > webhook.DefaultTolerance+time.Minute {
			t.Fatalf("accepted a webhook signed %v ago, beyond Stripe's tolerance", age)
		}
		var fields struct{ ID, Type string }
		if json.Unmarshal(payload, &fields) != nil || ev.ID == "" || ev.ID != fields.ID || ev.Type != fields.Type {
			t.Fatalf("the event read (%q, %q) is not the one sent: %s", ev.ID, ev.Type, payload)
		}
	})
}
