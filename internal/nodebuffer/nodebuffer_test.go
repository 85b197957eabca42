package nodebuffer

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBodyRoundTrip(t *testing.T) {
	for _, b := range [][]byte{[]byte("plain ünïcode text"), {0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe}, {}} {
		raw := Body(b)
		got, err := Decode(raw)
		require.NoError(t, err)
		assert.Equal(t, string(b), string(got))
	}
	assert.Equal(t, `"text"`, string(Body([]byte("text"))), "text travels as a string, as FlowFuse's agent takes it")
	assert.Equal(t, `{"type":"Buffer","data":[255,0]}`, string(Body([]byte{0xff, 0})))
	for _, bad := range []string{`{"type":"Buffer","data":[256]}`, `{"type":"Other","data":[1]}`, `12`} {
		_, err := Decode([]byte(bad))
		assert.Error(t, err, bad)
	}
	got, err := Decode([]byte("null"))
	require.NoError(t, err)
	assert.Nil(t, got)
}
