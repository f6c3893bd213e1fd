package httpapi

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/protocol"
)

// headETag is the entity tag of a collection at a head: "EPOCH:VERSION".
func headETag(hd protocol.Head) string {
	b := make([]byte, 0, len(hd.Epoch)+24)
	b = append(b, '"')
	b = hd.Cursor().AppendTo(b)
	b = append(b, '"')
	return string(b)
}

// viewETag is the entity tag of a snapshot of a view: the head's, with a
// hash of the filter, so that another view of the same version differs.
func viewETag(hd protocol.Head, where *filter.Filter) string {
	if where == nil {
		return headETag(hd)
	}
	h := fnv.New64a()
	h.Write([]byte(where.Key()))
	b := make([]byte, 0, len(hd.Epoch)+48)
	b = append(b, '"')
	b = hd.Cursor().AppendTo(b)
	b = append(b, '/')
	b = strconv.AppendUint(b, h.Sum64(), 16)
	b = append(b, '"')
	return string(b)
}

// versionETag is the entity tag of a record: "RECORD_VERSION".
func versionETag(v uint64) string {
	return `"` + strconv.FormatUint(v, 10) + `"`
}

// etagMatches reports whether an If-None-Match header value names etag:
// "*", or a comma-separated list of (possibly weak) entity tags.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimSpace(part)
		if part == "*" || strings.TrimPrefix(part, "W/") == etag {
			return true
		}
	}
	return false
}

// writePreconditions turns If-Match / If-None-Match on a record write into
// write options. If-Match takes one quoted record version ("3") or "*"
// (the record must exist, whatever its version); If-None-Match takes only
// "*" (the record must not exist). mustExist reports an If-Match of "*".
func writePreconditions(ifMatch, ifNoneMatch string) (opts []viewsync.WriteOption, mustExist bool, err error) {
	ifMatch, ifNoneMatch = strings.TrimSpace(ifMatch), strings.TrimSpace(ifNoneMatch)
	if ifMatch != "" && ifNoneMatch != "" {
		return nil, false, fmt.Errorf("%w: If-Match and If-None-Match together", viewsync.ErrInvalid)
	}
	switch {
	case ifNoneMatch == "*":
		return []viewsync.WriteOption{viewsync.IfAbsent()}, false, nil
	case ifNoneMatch != "":
		return nil, false, fmt.Errorf("%w: If-None-Match on a write must be *", viewsync.ErrInvalid)
	case ifMatch == "*":
		return nil, true, nil
	case ifMatch != "":
		v, err := parseVersionETag(ifMatch)
		if err != nil {
			return nil, false, err
		}
		return []viewsync.WriteOption{viewsync.IfVersion(v)}, false, nil
	}
	return nil, false, nil
}

// parseVersionETag parses a quoted record version such as "12". Weak tags
// are refused: If-Match compares strongly (RFC 9110, 13.1.1).
func parseVersionETag(s string) (uint64, error) {
	if len(s) < 3 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, fmt.Errorf("%w: If-Match must be a quoted record version like \"12\", got %q", viewsync.ErrInvalid, s)
	}
	v, err := protocol.ParseVersion(s[1 : len(s)-1])
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%w: If-Match must be a quoted record version like \"12\", got %q", viewsync.ErrInvalid, s)
	}
	return v, nil
}
