// Package transport builds the HTTP transport the network stores
// (storage/oci, storage/s3) start from, so that TLS is verified the same
// way, with the same -ca-file, whichever store is spoken to.
package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"
)

// New returns a transport that verifies TLS against the system pool
// plus the PEM certificates in caFile (if not empty), with HTTP/1.1 and
// 2, enough idle connections for parallel uploads, and a bound on the
// wait for an answer's headers.
func New(caFile string) (*http.Transport, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	t.MaxIdleConnsPerHost = 16
	t.ResponseHeaderTimeout = 2 * time.Minute
	return t, nil
}
