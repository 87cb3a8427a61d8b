package interceptors

import (
	"fmt"

	"github.com/gtx-io/gtx"
)

// ParseXID reads the XID from the values one request carries under
// gtx.MetadataKey (gRPC metadata, HTTP or NATS headers). It reports false
// when the request carries none; empty values count as none, so a hop that
// blanks the key takes the request out of any global transaction. Several
// values must all be the same XID. The error wraps gtx.ErrInvalidXID.
func ParseXID(values ...string) (xid string, ok bool, err error) {
	for _, v := range values {
		if v == "" {
			continue
		}
		if xid != "" && v != xid {
			return "", false, fmt.Errorf("interceptors: %w: the request carries %d different values under %s, send one", gtx.ErrInvalidXID, len(values), gtx.MetadataKey)
		}
		xid = v
	}
	if xid == "" {
		return "", false, nil
	}
	if err := gtx.ValidateXID(xid); err != nil {
		return "", false, fmt.Errorf("interceptors: %w", err)
	}
	return xid, true, nil
}
