package ws

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/viewsync/viewsync/protocol"
)

// handshake checks that r is an opening handshake the upgrader takes
// (RFC 6455, section 4.2.1), so that every refusal is answered here with
// the contract's error body and none by the upgrader, which would answer
// in plain text. A request that is no upgrade at all gets 426 (upgrade
// required) with the Upgrade header RFC 9110 asks for, as does an
// unsupported Sec-WebSocket-Version; a broken upgrade gets 400. It reports
// whether the client offers the viewsync subprotocol, and ok false when
// it has answered r.
func handshake(w http.ResponseWriter, r *http.Request) (offered, ok bool) {
	if !isUpgrade(r) {
		upgradeRequired(w, "expected a WebSocket upgrade: GET with Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key")
		return false, false
	}
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		writeError(w, protocol.CodeBadRequest, "a WebSocket upgrade needs HTTP/1.1")
		return false, false
	}
	if r.Host == "" {
		writeError(w, protocol.CodeBadRequest, "a WebSocket upgrade needs a Host header")
		return false, false
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || v[0] != "13" {
		if len(v) == 0 || v[0] == "" {
			w.Header().Set("Sec-WebSocket-Version", "13")
			writeError(w, protocol.CodeBadRequest, "a WebSocket upgrade needs Sec-WebSocket-Version: 13")
		} else {
			upgradeRequired(w, fmt.Sprintf("Sec-WebSocket-Version %q is not supported; this server speaks 13", strings.Join(v, ", ")))
		}
		return false, false
	}
	if k := r.Header.Values("Sec-WebSocket-Key"); len(k) != 1 || !validKey(k[0]) {
		writeError(w, protocol.CodeBadRequest, "a WebSocket upgrade needs one Sec-WebSocket-Key, the base64 of 16 bytes")
		return false, false
	}
	offered, ok = offersSubprotocol(r.Header.Values("Sec-WebSocket-Protocol"))
	if !ok {
		writeError(w, protocol.CodeBadRequest, "malformed Sec-WebSocket-Protocol: want comma-separated subprotocol names, such as "+protocol.WSSubprotocol)
		return false, false
	}
	return offered, true
}

// upgradeRequired answers 426 with the headers that say what to upgrade
// to: Upgrade (RFC 9110, section 15.5.22) and Sec-WebSocket-Version (RFC
// 6455, section 4.4).
func upgradeRequired(w http.ResponseWriter, msg string) {
	hd := w.Header()
	hd.Set("Connection", "Upgrade")
	hd.Set("Upgrade", "websocket")
	hd.Set("Sec-WebSocket-Version", "13")
	protocol.WriteError(w, http.StatusUpgradeRequired, protocol.CodeBadRequest, msg)
}

// isUpgrade reports whether r asks for a WebSocket upgrade: Upgrade:
// websocket, and the upgrade option in its (first) Connection header, as
// the upgrader reads them.
func isUpgrade(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	has := false
	ok := eachToken(r.Header.Get("Connection"), func(tok string) {
		has = has || strings.EqualFold(tok, "upgrade")
	})
	return ok && has
}

// validKey reports whether k is a Sec-WebSocket-Key: the base64 of 16
// bytes, in exactly 24 characters (the decoder skips line breaks, which
// the upgrader refuses).
func validKey(k string) bool {
	if len(k) != base64.StdEncoding.EncodedLen(16) {
		return false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(k)
	return err == nil && len(b) == 16
}

// offersSubprotocol reports whether the Sec-WebSocket-Protocol values
// offer viewsync's subprotocol, and false for ok when one is malformed.
func offersSubprotocol(values []string) (offered, ok bool) {
	for _, v := range values {
		if !eachToken(v, func(tok string) { offered = offered || tok == protocol.WSSubprotocol }) {
			return false, false
		}
	}
	return offered, true
}

// eachToken calls f with each element of the comma-separated list of
// tokens s (RFC 9110, section 5.6.1: empty elements are skipped) and
// reports whether s is such a list.
func eachToken(s string, f func(string)) bool {
	for elem := range strings.SplitSeq(s, ",") {
		elem = strings.Trim(elem, " \t")
		if elem == "" {
			continue
		}
		for i := 0; i < len(elem); i++ {
			if !isTokenChar(elem[i]) {
				return false
			}
		}
		f(elem)
	}
	return true
}

// isTokenChar reports whether c is a tchar of RFC 9110, section 5.6.2.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
