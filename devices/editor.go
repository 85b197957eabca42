package devices

import (
	"crypto/rand"
	"encoding/base64"
)

// NewEditorToken is a device's editor token (docs/device-protocol.md §3.6), ffde_<device id>_<base64url of 16
// random bytes>: the agent's Node-RED takes the device id from its second field.
func NewEditorToken(deviceID string) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return "ffde_" + deviceID + "_" + base64.RawURLEncoding.EncodeToString(b[:])
}
