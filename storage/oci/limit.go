package oci

import (
	"context"
	"io"
	"net/http"

	"golang.org/x/time/rate"
)

// limitBurst is the most bytes read at once under a bandwidth limit, so
// that the rate is kept over short spans too.
const limitBurst = 64 << 10

// newLimiter returns a limiter of bytesPerSecond, or nil for no limit.
func newLimiter(bytesPerSecond int64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bytesPerSecond), int(min(limitBurst, max(bytesPerSecond, 1))))
}

// limitTransport holds request bodies (uploads) and response bodies
// (downloads) to a rate shared by every request of one Store
// (Options.LimitUpload, Options.LimitDownload).
type limitTransport struct {
	next     http.RoundTripper
	up, down *rate.Limiter
}

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.up != nil && req.Body != nil && req.Body != http.NoBody {
		req = req.Clone(req.Context())
		req.Body = &limitedBody{ReadCloser: req.Body, lim: t.up, ctx: req.Context()}
	}
	resp, err := t.next.RoundTrip(req)
	if err == nil && t.down != nil && resp.Body != nil {
		resp.Body = &limitedBody{ReadCloser: resp.Body, lim: t.down, ctx: req.Context()}
	}
	return resp, err
}

// limitedBody reads through a limiter: a read of n bytes waits until the
// limiter allows n more.
type limitedBody struct {
	io.ReadCloser
	lim *rate.Limiter
	ctx context.Context
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if len(p) > b.lim.Burst() {
		p = p[:b.lim.Burst()]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if werr := b.lim.WaitN(b.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}
