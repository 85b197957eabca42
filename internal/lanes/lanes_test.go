package lanes

import (
	"fmt"
	"sync"
	"testing"
)

// TestOneKeyInOrder: the work of one key runs in the order it was queued, whatever the other keys do.
func TestOneKeyInOrder(t *testing.T) {
	l := New(4, 16)
	defer l.Stop()
	var mu sync.Mutex
	seen := map[string][]int{}
	var wg sync.WaitGroup
	for i := range 200 {
		key := fmt.Sprint("device-", i%7)
		wg.Add(1)
		l.Later(key, func() {
			defer wg.Done()
			mu.Lock()
			seen[key] = append(seen[key], i)
			mu.Unlock()
		})
	}
	wg.Wait()
	for key, order := range seen {
		for j := 1; j < len(order); j++ {
			if order[j] < order[j-1] {
				t.Fatalf("%s ran %v out of order", key, order)
			}
		}
	}
	ran := false
	if !l.Wait("device-1", func() { ran = true }) || !ran {
		t.Fatal("Wait returns once fn has run")
	}
}

// TestStoppedLanesDoNotBlock: once stopped, Wait reports false and Later returns, even with a full lane.
func TestStoppedLanesDoNotBlock(t *testing.T) {
	l := New(1, 1)
	block := make(chan struct{})
	l.Later("a", func() { <-block })
	l.Later("a", func() {}) // fills the lane's queue
	l.Stop()
	l.Later("a", func() { t.Error("queued work ran after Stop") })
	if l.Wait("a", func() {}) {
		t.Fatal("Wait reported success on stopped lanes")
	}
	close(block)
}

// TestBatchKeepsOrder: items queued behind each other run as one batch, a function queued between them
// splits the batch and runs in its place, and every item runs once, in order.
func TestBatchKeepsOrder(t *testing.T) {
	var ran []any
	var batches int
	block := make(chan struct{})
	l := NewBatching(1, 64, 3, func(items []any) { batches++; ran = append(ran, items...) })
	defer l.Stop()
	l.Later("a", func() { <-block }) // holds the lane while the rest queues
	for i := range 5 {
		l.Batch("a", i)
	}
	l.Later("a", func() { ran = append(ran, "fn") })
	l.Batch("a", 5)
	close(block)
	if !l.Wait("a", func() {}) {
		t.Fatal("lanes stopped")
	}
	if fmt.Sprint(ran) != "[0 1 2 3 4 fn 5]" || batches != 3 {
		t.Fatalf("ran %v in %d batches, want [0 1 2 3 4 fn 5] in 3 (3, 2 then 1)", ran, batches)
	}
}
