// Package nodebuffer reads and writes the bodies of the device editor tunnel's frames (docs/device-protocol.md
// §3.6): a JSON string, or a Node.js Buffer's JSON form, {"type":"Buffer","data":[bytes…]}.
package nodebuffer

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Encode is b as a Node.js Buffer's JSON form.
func Encode(b []byte) json.RawMessage {
	var out bytes.Buffer
	out.Grow(len(b)*4 + 32)
	out.WriteString(`{"type":"Buffer","data":[`)
	for i, c := range b {
		if i > 0 {
			out.WriteByte(',')
		}
		out.WriteString(strconv.Itoa(int(c)))
	}
	out.WriteString("]}")
	return out.Bytes()
}

// Body is b as a frame's body: a string when b is UTF-8 text (what FlowFuse's agent takes), a Buffer otherwise,
// since a JSON string cannot carry bytes that are not UTF-8.
func Body(b []byte) json.RawMessage {
	if utf8.Valid(b) {
		raw, _ := json.Marshal(string(b))
		return raw
	}
	return Encode(b)
}

// Decode reads a frame's body, a string or a Buffer; nil or null is no body.
func Decode(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var text string
		err := json.Unmarshal(raw, &text)
		return []byte(text), err
	}
	var buf struct {
		Type string `json:"type"`
		Data []int  `json:"data"`
	}
	if err := json.Unmarshal(raw, &buf); err != nil || buf.Type != "Buffer" {
		return nil, errors.New("tunnel body is neither a string nor a Buffer")
	}
	b := make([]byte, len(buf.Data))
	for i, v := range buf.Data {
		if v < 0 || v > 255 {
			return nil, errors.New("tunnel body: a Buffer byte out of range")
		}
		b[i] = byte(v)
	}
	return b, nil
}
