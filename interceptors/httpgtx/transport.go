package httpgtx

import (
	"context"
	"net/http"

	"github.com/gtx-io/gtx"
)

// Transport is an http.RoundTripper that sends the XID of each request's
// context in the header gtx.MetadataKey, and no XID for a context without
// one. It leaves the caller's request untouched.
//
//	client := &http.Client{Transport: &httpgtx.Transport{}}
type Transport struct {
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	xid, ok := gtx.XIDFromContext(req.Context())
	sent := req.Header.Values(gtx.MetadataKey)
	if (!ok && len(sent) == 0) || (ok && len(sent) == 1 && sent[0] == xid) {
		return base.RoundTrip(req)
	}
	out := *req
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header, 1)
	}
	SetHeader(req.Context(), out.Header)
	return base.RoundTrip(&out)
}

// SetHeader sets h's gtx.MetadataKey to the XID ctx carries, or removes it
// when ctx carries none: for requests sent without Transport.
func SetHeader(ctx context.Context, h http.Header) {
	if xid, ok := gtx.XIDFromContext(ctx); ok {
		h.Set(gtx.MetadataKey, xid)
		return
	}
	h.Del(gtx.MetadataKey)
}
