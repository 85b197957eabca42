package billing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Kinds of billed line.
const (
	LinePlan      = "plan"
	LineInstances = "instances"
	LineDevices   = "devices"
)

// Line is one thing a team is billed for, with how its quantity came about.
type Line struct {
	Kind           string `json:"kind"`
	InstanceTypeID string `json:"instanceTypeId,omitempty"`
	PriceID        string `json:"priceId"`
	Count          int    `json:"count"`    // what the team holds
	Free           int    `json:"free"`     // the team type's free allowance
	Quantity       int64  `json:"quantity"` // billed: max(0, count - free)
}

// Lines computes what a team of a team type with this usage is billed for: the plan (quantity 1), one line
// per priced instance type (instances that are not suspended, less the free allowance), and devices (less
// the free ones). Lines with quantity 0 are kept, for the billing view.
func Lines(b domain.TeamBilling, u storage.Usage) []Line {
	var out []Line
	if b.PlanPriceID != "" {
		out = append(out, Line{Kind: LinePlan, PriceID: b.PlanPriceID, Count: 1, Quantity: 1})
	}
	types := make([]string, 0, len(b.InstancePrices))
	for id := range b.InstancePrices {
		types = append(types, id)
	}
	sort.Strings(types)
	for _, id := range types {
		n, free := u.InstancesByType[id], b.FreeInstances[id]
		out = append(out, Line{Kind: LineInstances, InstanceTypeID: id, PriceID: b.InstancePrices[id], Count: n, Free: free, Quantity: int64(max(0, n-free))})
	}
	if b.DevicePriceID != "" {
		out = append(out, Line{Kind: LineDevices, PriceID: b.DevicePriceID, Count: u.Devices, Free: b.FreeDevices, Quantity: int64(max(0, u.Devices-b.FreeDevices))})
	}
	return out
}

// Want is the subscription items the lines call for: one per price (lines sharing a price add up), none
// with quantity 0, ordered by price.
func Want(lines []Line) []Item {
	byPrice := map[string]int64{}
	for _, l := range lines {
		byPrice[l.PriceID] += l.Quantity
	}
	var out []Item
	for price, q := range byPrice {
		if q > 0 {
			out = append(out, Item{PriceID: price, Quantity: q})
		}
	}
	slices.SortFunc(out, func(a, b Item) int { return compareStrings(a.PriceID, b.PriceID) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Diff returns the changes that turn the current items into the wanted ones, matching items by price:
// quantities set absolutely, new prices added, prices no longer wanted removed. Stripe refuses to remove a
// subscription's last item, so when nothing is wanted the first item stays with quantity 0.
func Diff(current, want []Item) []ItemChange {
	wanted := map[string]int64{}
	for _, w := range want {
		wanted[w.PriceID] = w.Quantity
	}
	var changes []ItemChange
	seen := map[string]bool{}
	kept := 0
	for _, c := range current {
		q, ok := wanted[c.PriceID]
		switch {
		case ok && !seen[c.PriceID]:
			seen[c.PriceID] = true
			kept++
			if c.Quantity != q {
				changes = append(changes, ItemChange{ID: c.ID, Quantity: q})
			}
		case len(want) == 0 && kept == 0:
			kept++
			if c.Quantity != 0 {
				changes = append(changes, ItemChange{ID: c.ID, Quantity: 0})
			}
		default:
			changes = append(changes, ItemChange{ID: c.ID, Delete: true})
		}
	}
	for _, w := range want {
		if !seen[w.PriceID] {
			changes = append(changes, ItemChange{PriceID: w.PriceID, Quantity: w.Quantity})
		}
	}
	return changes
}

// sameItems reports whether two item lists bill the same prices and quantities (item IDs aside; items with
// quantity 0 count as absent).
func sameItems(a, b []Item) bool {
	return slices.Equal(Want(asLines(a)), Want(asLines(b)))
}

func asLines(items []Item) []Line {
	out := make([]Line, len(items))
	for i, it := range items {
		out[i] = Line{PriceID: it.PriceID, Quantity: it.Quantity}
	}
	return out
}

// requestKey derives the idempotency key of a request from the caller's key (unique per attempt sequence,
// repeated on retries) and the request itself: a retry of the same request replays Stripe's first answer,
// while a different request never collides with an old key.
func requestKey(base, subscriptionID string, body any) string {
	b, _ := json.Marshal(body)
	h := sha256.Sum256(append([]byte(subscriptionID+"\x00"), b...))
	return base + "/" + hex.EncodeToString(h[:8])
}

func toBilled(items []Item) []storage.BilledItem {
	out := make([]storage.BilledItem, len(items))
	for i, it := range items {
		out[i] = storage.BilledItem{ItemID: it.ID, PriceID: it.PriceID, Quantity: it.Quantity}
	}
	return out
}

func fromBilled(items []storage.BilledItem) []Item {
	out := make([]Item, len(items))
	for i, it := range items {
		out[i] = Item{ID: it.ItemID, PriceID: it.PriceID, Quantity: it.Quantity}
	}
	return out
}
