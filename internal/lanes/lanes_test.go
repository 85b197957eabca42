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
