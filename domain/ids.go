package domain

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"sync"
	"time"
)

// crockford is lower-case Crockford base32: IDs sort as their bytes do, so they sort by creation time.
var crockford = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a new opaque ID: 48 bits of milliseconds then 80 random bits (a ULID in lower-case).
// IDs made in one process are strictly increasing, even within a millisecond, so lists ordered by ID are in
// creation order and cursors stay stable.
func NewID() string {
	idMu.Lock()
	defer idMu.Unlock()
	ms := uint64(time.Now().UnixMilli())
	if ms <= idLastMS {
		ms = idLastMS
		incrementRandom(&idLastRand)
	} else if _, err := rand.Read(idLastRand[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	idLastMS = ms
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], ms<<16)
	copy(b[6:], idLastRand[:])
	return crockford.EncodeToString(b[:])
}

var (
	idMu       sync.Mutex
	idLastMS   uint64
	idLastRand [10]byte
)

func incrementRandom(r *[10]byte) {
	for i := len(r) - 1; i >= 0; i-- {
		r[i]++
		if r[i] != 0 {
			return
		}
	}
}

// Token prefixes make a leaked token recognisable (secret scanners) and tell its kind at a glance.
const (
	TokenPrefixUser         = "fyu_"
	TokenPrefixSession      = "fys_"
	TokenPrefixSecondFactor = "fyf_" // a sign-in waiting for its second factor
	TokenPrefixDevice       = "fyd_"
	TokenPrefixProvisioning = "fyp_"
	TokenPrefixInstance     = "fyi_"
	TokenPrefixInvitation   = "fyv_"
	TokenPrefixReset        = "fyr_"
	// TokenPrefixVerification marks a link that confirms a signed-up account's e-mail address.
	TokenPrefixVerification = "fye_"
	TokenPrefixEditorCode   = "fyc_" // single-use code that opens an instance's editor on its own origin
	TokenPrefixEditorCookie = "fyo_" // the session cookie of an instance's editor origin
	// TokenPrefixEndpoint marks a bearer token an owner creates for a protected instance's endpoints. The sign-in
	// of an instance's address uses the editor's prefixes (fyc_ code, fyo_ cookie): rows of other kinds.
	TokenPrefixEndpoint = "fyh_"
)

// NewToken returns a random token with the prefix, and the hash to store in its place.
func NewToken(prefix string) (token, hash string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	token = prefix + strings.ToLower(crockford.EncodeToString(b[:]))
	return token, HashToken(token)
}

// HashToken is how tokens are stored: SHA-256, hex. Tokens carry 256 random bits, so no salt or stretching is needed.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewSecret returns a random hex secret of n bytes (credential secrets and the like).
func NewSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}
