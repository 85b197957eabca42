package devices

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// One-time codes set up an agent without a device.yml (docs/device-protocol.md §1.4): `--otc <code> --ff-url <url>`,
// as FlowFuse's installer runs it. A code is made for a device (the exchange gives that device new credentials) or
// for a provisioning token (the exchange registers a new device, as the token would). It works once, for a day,
// and is stored as a digest, like every token.
const (
	TokenKindOTC = "otc"
	// OTCLifetime is how long a code works: FlowFuse's is a day.
	OTCLifetime = 24 * time.Hour
	// otcOwnerProvisioningToken owns the codes made for a provisioning token (their owner ID is the token's).
	otcOwnerProvisioningToken = "provisioning-token"
)

// otcAlphabet leaves out letters that read alike (Crockford's base32, lower-case).
const otcAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// newOTC returns a code of four groups of five characters (100 random bits), easy to type, and longer than the
// 8 characters FlowFuse's agent asks for.
func newOTC() string {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	var sb strings.Builder
	for i, c := range b {
		if i > 0 && i%5 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(otcAlphabet[int(c)%len(otcAlphabet)]) // 256 is a multiple of 32: no bias
	}
	return sb.String()
}

// OneTimeCode is a new code, shown once.
type OneTimeCode struct {
	Code      string    `json:"otc"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// IssueDeviceOTC makes a code for a device, replacing any earlier one of it, inside tx. The device's current
// credentials keep working until the code is used.
func IssueDeviceOTC(ctx context.Context, tx *storage.Store, d *storage.Device) (*OneTimeCode, error) {
	if err := tx.DeleteTokensOfOwnerKind(ctx, tokenOwnerDevice, d.ID, TokenKindOTC); err != nil {
		return nil, err
	}
	return issueOTC(ctx, tx, tokenOwnerDevice, d.ID, d.TeamID)
}

// IssueProvisioningOTC makes a code that registers one device as the provisioning token would, inside tx.
func IssueProvisioningOTC(ctx context.Context, tx *storage.Store, tok *storage.Token) (*OneTimeCode, error) {
	return issueOTC(ctx, tx, otcOwnerProvisioningToken, tok.ID, *tok.TeamID)
}

func issueOTC(ctx context.Context, tx *storage.Store, ownerType, ownerID, teamID string) (*OneTimeCode, error) {
	code := newOTC()
	expires := time.Now().Add(OTCLifetime).UTC().Truncate(time.Second)
	err := tx.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: domain.HashToken(code), Kind: TokenKindOTC,
		Name: "one-time code", OwnerType: ownerType, OwnerID: ownerID, TeamID: &teamID, ExpiresAt: &expires})
	if err != nil {
		return nil, err
	}
	return &OneTimeCode{Code: code, ExpiresAt: expires}, nil
}

// RevokeProvisioningOTCs deletes the unused codes of a provisioning token that is revoked.
func RevokeProvisioningOTCs(ctx context.Context, tx *storage.Store, tokenID string) error {
	return tx.DeleteTokensOfOwner(ctx, otcOwnerProvisioningToken, tokenID)
}

// OTCDigest is how a code arrives (FlowFuse's agent sends `Bearer base64(<code>)`) turned into its stored digest;
// a bearer that is not base64 is taken as the code itself.
func OTCDigest(bearer string) string {
	if b, err := base64.StdEncoding.DecodeString(bearer); err == nil && len(b) > 0 {
		return domain.HashToken(string(b))
	}
	return domain.HashToken(bearer)
}

// Redeemed is what a used code was made for: a device, or a provisioning token.
type Redeemed struct {
	DeviceID, ProvisioningTokenID, TeamID string
}

// RedeemOTC uses up a code by its digest, inside tx: it is gone whatever happens next, as in FlowFuse. An unknown,
// used or expired code is 401, which FlowFuse's agent reports as an invalid code.
func RedeemOTC(ctx context.Context, tx *storage.Store, digest string) (*Redeemed, error) {
	tok, err := tx.ConsumeToken(ctx, digest, TokenKindOTC, time.Now())
	if domain.IsKind(err, domain.KindNotFound) || err == nil && tok.TeamID == nil {
		return nil, domain.Unauthorized("The one-time code is not valid, was used already or has expired.")
	}
	if err != nil {
		return nil, err
	}
	r := &Redeemed{TeamID: *tok.TeamID}
	if tok.OwnerType == tokenOwnerDevice {
		r.DeviceID = tok.OwnerID
	} else {
		r.ProvisioningTokenID = tok.OwnerID
	}
	return r, nil
}

// Reissue gives a device wholly new credentials, inside tx: token, broker password and credential secret, as
// FlowFuse does when credentials are regenerated or a one-time code is used. The old token and password stop
// working when tx commits; the caller closes the device's broker connection then.
func (s *Service) Reissue(ctx context.Context, tx *storage.Store, d *storage.Device) (*Credentials, error) {
	d.CredentialSecret = s.Sealer.Seal(domain.NewSecret(32))
	if err := tx.UpdateDevice(ctx, d, "credential_secret"); err != nil {
		return nil, err
	}
	return s.IssueCredentials(ctx, tx, d)
}
