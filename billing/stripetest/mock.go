package stripetest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// MockKey is a test secret key; stripe-mock accepts any key of this shape.
const MockKey = "sk_test_flowyard"

// StartMock runs stripe-mock on a free port of 127.0.0.1 for the test and returns its base URL. It finds
// the binary through FLOWYARD_STRIPE_MOCK, the module's bin/ or PATH, and fails the test, saying how to
// install it, when there is none.
func StartMock(t testing.TB) string {
	t.Helper()
	bin := findMock()
	if bin == "" {
		t.Fatalf("stripe-mock not found: run `make bin/stripe-mock` (go install github.com/stripe/stripe-mock@v0.203.0 into bin/) or set FLOWYARD_STRIPE_MOCK")
	}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stripe-mock pipe: %v", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stripe-mock: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go scanAddress(out, addr)
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("stripe-mock did not say where it listens within 30s")
	}
	return ""
}

var listening = regexp.MustCompile(`Listening for HTTP at address: (\S+)`)

// scanAddress reads stripe-mock's output for its HTTP address, then drains the rest.
func scanAddress(r io.Reader, addr chan<- string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			addr <- m[1]
			break
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func findMock() string {
	if p := os.Getenv("FLOWYARD_STRIPE_MOCK"); p != "" {
		return p
	}
	if dir, err := os.Getwd(); err == nil {
		for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				if p := filepath.Join(dir, "bin", "stripe-mock"); isFile(p) {
					return p
				}
				break
			}
		}
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil && !strings.HasPrefix(p, ".") {
		return p
	}
	return ""
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
