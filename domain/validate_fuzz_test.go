package domain

import (
	"regexp"
	"testing"
)

var (
	acceptedSlug     = regexp.MustCompile(`^[a-z0-9-]{2,63}$`)
	acceptedInstance = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
)

// FuzzValidators checks that whatever the validators accept really has the documented shape, and that they
// never panic.
func FuzzValidators(f *testing.F) {
	for _, seed := range []string{"team-a", "A", "app", "a@b.co", "x://y", "\x00", "ünïcode", "-", "node-red"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateSlug("f", s) == nil && !acceptedSlug.MatchString(s) {
			t.Fatalf("slug %q accepted", s)
		}
		if ValidateInstanceName("f", s) == nil && (!acceptedInstance.MatchString(s) || reservedInstanceNames[s]) {
			t.Fatalf("instance name %q accepted", s)
		}
		if email, fe := ValidateEmail("f", s); fe == nil && len(email) > 254 {
			t.Fatalf("email %q accepted", email)
		}
		if ValidateName("f", s) == nil && isBlank(s) {
			t.Fatalf("blank name %q accepted", s)
		}
		if (ValidateName("f", s) == nil || ValidateDescription("f", s) == nil) && !Storable(s) {
			t.Fatalf("text %q that a store refuses was accepted", s)
		}
		_ = ValidateEnvName("f", s)
		_ = Slugify(s)
	})
}

func isBlank(s string) bool { return regexp.MustCompile(`^\s*$`).MatchString(s) }
