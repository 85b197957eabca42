package nodered

import (
	"fmt"
	"strconv"
	"strings"
)

// semver is major.minor.patch; prerelease tags are ignored because engines
// ranges of Node-RED and its Node.js builds do not use them.
type semver [3]int

func (v semver) less(o semver) bool {
	for i := range v {
		if v[i] != o[i] {
			return v[i] < o[i]
		}
	}
	return false
}

// parseVersion reads "v22.9.0", "22.9" or "22"; given says how many parts
// were present ("x" and "*" end the version early).
func parseVersion(s string) (v semver, given int, err error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return v, 0, fmt.Errorf("empty version")
	}
	for i, part := range strings.Split(s, ".") {
		if part == "x" || part == "X" || part == "*" {
			break
		}
		if i >= 3 {
			return v, 0, fmt.Errorf("version %q has too many parts", s)
		}
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return v, 0, fmt.Errorf("version %q: bad part %q", s, part)
		}
		v[i] = n
		given = i + 1
	}
	return v, given, nil
}

// nextAfter is the first version past the partial version v with given
// parts: nextAfter(22.9, 2) = 22.10.0; a full version gets patch+1.
func nextAfter(v semver, given int) semver {
	switch given {
	case 0:
		return semver{1 << 30}
	case 1:
		return semver{v[0] + 1}
	case 2:
		return semver{v[0], v[1] + 1}
	default:
		return semver{v[0], v[1], v[2] + 1}
	}
}

// satisfiesRange reports whether version meets an npm engines range such as
// ">=22.9", "^18 || >=20" or "18.x". It knows the operators >=, >, <=, <,
// =, ^ and ~ joined by spaces (and) and || (or); anything else is an error.
func satisfiesRange(version, rng string) (bool, error) {
	v, _, err := parseVersion(version)
	if err != nil {
		return false, err
	}
	rng = strings.TrimSpace(rng)
	if rng == "" || rng == "*" {
		return true, nil
	}
	for _, alt := range strings.Split(rng, "||") {
		ok, err := satisfiesAll(v, strings.Fields(alt))
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

func satisfiesAll(v semver, comparators []string) (bool, error) {
	for _, c := range comparators {
		ok, err := satisfiesComparator(v, c)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func satisfiesComparator(v semver, c string) (bool, error) {
	op := strings.TrimRight(c[:min(2, len(c))], "0123456789vxX*.")
	bound, given, err := parseVersion(c[len(op):])
	if err != nil {
		return false, fmt.Errorf("range %q: %w", c, err)
	}
	upper := nextAfter(bound, given)
	switch op {
	case ">=":
		return !v.less(bound), nil
	case ">":
		return !v.less(upper), nil
	case "<":
		return v.less(bound), nil
	case "<=":
		return v.less(upper), nil
	case "", "=":
		return !v.less(bound) && v.less(upper), nil
	case "^":
		return !v.less(bound) && v.less(caretUpper(bound, given)), nil
	case "~":
		return !v.less(bound) && v.less(nextAfter(bound, min(given, 2))), nil
	}
	return false, fmt.Errorf("range %q: unknown operator %q", c, op)
}

// caretUpper: ^1.2.3 < 2.0.0, ^0.2.3 < 0.3.0, ^0.0.3 < 0.0.4.
func caretUpper(v semver, given int) semver {
	switch {
	case v[0] > 0 || given == 1:
		return nextAfter(v, 1)
	case v[1] > 0 || given == 2:
		return nextAfter(v, 2)
	default:
		return nextAfter(v, 3)
	}
}
