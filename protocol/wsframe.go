package protocol

// Server-to-client WebSocket frames (RFC 6455 §5.2) are unmasked, so a
// message can be framed once and the same bytes written to every client.

// Opcodes of the frames the server writes itself.
const (
	wsOpText = 0x1
	wsOpPing = 0x9
)

// AppendWSFrameHeader appends the header of a final, unmasked text frame
// carrying n bytes of payload.
func AppendWSFrameHeader(b []byte, n int) []byte {
	return appendWSHeader(b, wsOpText, n)
}

// WSPingFrame is an unmasked ping frame with no payload.
var WSPingFrame = appendWSHeader(nil, wsOpPing, 0)

func appendWSHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op) // FIN
	switch {
	case n < 126:
		return append(b, byte(n))
	case n < 1<<16:
		return append(b, 126, byte(n>>8), byte(n))
	}
	return append(b, 127,
		byte(uint64(n)>>56), byte(uint64(n)>>48), byte(uint64(n)>>40), byte(uint64(n)>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}
