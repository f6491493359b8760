package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/storage"
)

// s3Error is an error answer from the endpoint, reduced to what a user
// needs: the operation, the status and code, and advice; never a
// credential (minio-go's errors carry none, and nothing here adds one).
type s3Error struct {
	op     string
	where  string // the location
	status int
	code   string // S3's error code, e.g. NoSuchBucket
	advice string
	err    error
}

func (e *s3Error) Error() string {
	s := fmt.Sprintf("%s: %s", e.where, e.op)
	if e.status != 0 {
		s += fmt.Sprintf(": %d %s", e.status, http.StatusText(e.status))
	}
	if e.code != "" {
		s += " (" + e.code + ")"
	}
	if e.advice != "" {
		s += ": " + e.advice
	}
	return s
}

func (e *s3Error) Unwrap() error { return e.err }

// wrap classifies err from operation op.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %s: %w", s.loc, op, err)
	}
	var body bodyError
	if errors.As(err, &body) {
		return fmt.Errorf("%s: %s: %w", s.loc, op, err)
	}
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) || resp.StatusCode == 0 {
		return s.connectError(op, err)
	}
	e := &s3Error{op: op, where: s.loc.String(), status: resp.StatusCode, code: resp.Code, err: err}
	switch {
	case resp.Code == "NoSuchBucket":
		e.err = errors.Join(err, storage.ErrNotFound, storage.ErrNotCreatable)
		e.advice = fmt.Sprintf("bucket %s does not exist: create it first (aws s3 mb s3://%s, or mc mb), coffer does not create buckets", s.loc.bucket, s.loc.bucket)
	case resp.Code == "InvalidAccessKeyId" || resp.Code == "XAdminUserNotFound":
		// VersityGW answers an unknown access key with 404
		// XAdminUserNotFound where AWS answers 403 InvalidAccessKeyId.
		e.err = errors.Join(err, storage.ErrAccessDenied)
		e.advice = fmt.Sprintf("the access key from %s is not known to the endpoint: check it", s.creds.source())
	case resp.Code == "SignatureDoesNotMatch":
		e.err = errors.Join(err, storage.ErrAccessDenied)
		e.advice = fmt.Sprintf("the secret key from %s does not match its access key: check it", s.creds.source())
	case resp.Code == "ExpiredToken" || resp.Code == "InvalidToken" || resp.Code == "TokenRefreshRequired":
		e.err = errors.Join(err, storage.ErrAccessDenied)
		e.advice = fmt.Sprintf("the session token from %s has expired or is invalid: get new credentials", s.creds.source())
	case resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound:
		e.err = errors.Join(err, storage.ErrNotFound)
	case (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) && s.creds.source() == noCredentials:
		e.err = errors.Join(err, storage.ErrAccessDenied)
		e.advice = "no credentials were found (no AWS_ACCESS_KEY_ID, no profile in ~/.aws, no IAM role) and the bucket refuses anonymous requests: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
		if half := halfSetKeys(s.opt.getenv()); half != "" {
			e.advice = "the bucket refuses anonymous requests, and " + half
		}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		e.err = errors.Join(err, storage.ErrAccessDenied)
		e.advice = fmt.Sprintf("the credentials from %s lack the permission (docs/s3.md lists what each command needs)", s.creds.source())
	case resp.Code == "InvalidRange" || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		e.err = errors.Join(err, storage.ErrInvalidRange)
	case resp.Code == "BadDigest" || resp.Code == "InvalidDigest" || resp.Code == "XAmzContentSHA256Mismatch":
		e.advice = "the bytes were changed on the way to the endpoint (the checksum sent with them did not match)"
	case resp.Code == "AuthorizationHeaderMalformed" && resp.Region != "":
		e.advice = fmt.Sprintf("the bucket is in region %s: add ?region=%s to the location or set AWS_REGION", resp.Region, resp.Region)
	case resp.StatusCode == http.StatusMovedPermanently || resp.Code == "PermanentRedirect":
		e.advice = "the bucket is in another region: set AWS_REGION, or add ?region=REGION to the location"
	}
	return e
}

// connectError turns a transport failure into advice.
func (s *Store) connectError(op string, err error) error {
	host := s.loc.endpoint
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var certInvalid x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var opErr *net.OpError
	switch {
	case errors.As(err, &unknownAuthority):
		return fmt.Errorf("S3 endpoint %s: TLS certificate signed by an unknown authority: trust its CA with -ca-file or SSL_CERT_FILE", host)
	case errors.As(err, &hostnameErr), errors.As(err, &certInvalid):
		return fmt.Errorf("S3 endpoint %s: TLS certificate is not valid for this host (%v): fix the certificate or use the name it was issued for", host, err)
	case errors.As(err, &recordErr):
		return fmt.Errorf("S3 endpoint %s does not speak TLS: use -insecure-http (or ?insecure-http=true) to allow plain HTTP", host)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return fmt.Errorf("%s: %s: cannot reach S3 endpoint %s: %w", s.loc, op, host, err)
	}
	return fmt.Errorf("%s: %s: %w", s.loc, op, err)
}
