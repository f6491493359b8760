package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/cofferhq/coffer/storage"
)

// registryError is an error answer from a registry, reduced to what a
// user needs: never a credential, always the registry and the advice.
type registryError struct {
	op     string
	host   string
	status int
	code   string // the first Distribution error code, e.g. NAME_UNKNOWN
	msg    string
	advice string
	err    error
}

func (e *registryError) Error() string {
	s := fmt.Sprintf("registry %s: %s", e.host, e.op)
	if e.status != 0 {
		s += fmt.Sprintf(": %d %s", e.status, http.StatusText(e.status))
	}
	if e.msg != "" {
		s += " (" + e.msg + ")"
	}
	if e.advice != "" {
		s += ": " + e.advice
	}
	return s
}

func (e *registryError) Unwrap() error { return e.err }

// wrapError classifies err from an operation on the registry.
func wrapError(loc location, credDesc, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		var ce *credentialError
		if errors.As(err, &ce) {
			return fmt.Errorf("registry %s: %s: %w", loc.host, op, ce)
		}
		if errors.Is(err, errdef.ErrNotFound) {
			return fmt.Errorf("registry %s: %s: %w", loc.host, op, storage.ErrNotFound)
		}
		if msg := strings.ToLower(err.Error()); errors.Is(err, auth.ErrBasicCredentialNotFound) ||
			strings.Contains(msg, "401") || strings.Contains(msg, "unauthorized") {
			return &registryError{op: op, host: loc.host, status: http.StatusUnauthorized, err: errors.Join(err, storage.ErrAccessDenied),
				advice: credentialAdvice(loc, credDesc)}
		}
		return connectError(loc.host, fmt.Errorf("%s: %w", op, err))
	}
	re := &registryError{op: op, host: loc.host, status: resp.StatusCode, err: err}
	if len(resp.Errors) > 0 {
		re.code = resp.Errors[0].Code
		re.msg = resp.Errors[0].Message
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		re.err = errors.Join(err, storage.ErrAccessDenied)
		re.advice = credentialAdvice(loc, credDesc)
	case http.StatusForbidden:
		re.err = errors.Join(err, storage.ErrAccessDenied)
		re.advice = fmt.Sprintf("the credentials from %s lack access to %s; ask for push and pull rights on it", credDesc, loc.repo)
	case http.StatusNotFound:
		re.err = errors.Join(err, storage.ErrNotFound)
		if re.code == errcode.ErrorCodeNameUnknown {
			re.advice = fmt.Sprintf("repository %s does not exist", loc.repo)
		}
	case http.StatusBadRequest:
		switch {
		case re.code == errcode.ErrorCodeDigestInvalid || strings.Contains(strings.ToLower(re.msg), "digest"):
			re.err = errors.Join(err, storage.ErrInvalidName)
			re.advice = "the bytes do not hash to the object's name"
		case re.code == "" && resp.URL != nil && resp.URL.Scheme == "http" && (resp.Method == http.MethodGet || resp.Method == http.MethodHead):
			// What Go's and nginx's TLS servers answer a plain request.
			re.advice = "a 400 with no registry error is what a server that speaks HTTPS answers plain HTTP: drop -insecure-http (and ?insecure-http=true), and give -ca-file if its certificate is your own"
		}
	case http.StatusMethodNotAllowed:
		re.err = errors.Join(err, storage.ErrNotSupported)
		re.advice = "the registry does not allow this operation"
		if strings.HasPrefix(op, "uploading") || strings.HasPrefix(op, "pushing") {
			re.advice = "the registry refuses writes (read-only, as in maintenance mode, or a pull-through mirror); back up to one that accepts pushes"
		}
	case http.StatusRequestEntityTooLarge:
		re.advice = "the registry, or usually a proxy in front of it, limits the size of a request; " + uploadChunkAdvice
	case http.StatusTooManyRequests:
		re.advice = "rate limited even after waiting; try again later or authenticate for a higher limit"
	}
	return re
}

// uploadChunkAdvice tells how to get uploads past a limit on request
// sizes.
const uploadChunkAdvice = "give -upload-chunk below that limit (as -upload-chunk 512KiB)"

// tooLargeError is an upload a registry refused with 413: a request body
// over a limit, which is nearly always a reverse proxy's (nginx's
// client_max_body_size is 1 MiB by default) rather than the registry's.
// Retrying cannot help, smaller requests can.
type tooLargeError struct {
	host    string
	sent    int64 // bytes in the refused request
	chunked bool  // the upload was already in chunks of -upload-chunk
	err     error
}

func (e *tooLargeError) Error() string {
	advice := uploadChunkAdvice
	if e.chunked {
		advice = "give a smaller -upload-chunk, below that limit (as -upload-chunk 512KiB)"
	}
	return fmt.Sprintf("registry %s refused an upload of %d bytes as too large (%d %s), a limit of a proxy in front of it, usually; %s",
		e.host, e.sent, http.StatusRequestEntityTooLarge, http.StatusText(http.StatusRequestEntityTooLarge), advice)
}

func (e *tooLargeError) Unwrap() error { return e.err }

// loginCredentials describes the credentials `coffer login` was given,
// whose refusal needs advice other than running login.
const loginCredentials = "the username and password given"

func credentialAdvice(loc location, credDesc string) string {
	if credDesc == loginCredentials {
		return fmt.Sprintf("%s were refused: check the user name and the password or token (some registries want a token with push and pull scopes, not the account password)", loginCredentials)
	}
	if strings.Contains(credDesc, "docker config") {
		return fmt.Sprintf("no valid credentials (tried %s): run `coffer login %s` or set COFFER_REGISTRY_USERNAME and COFFER_REGISTRY_PASSWORD", credDesc, loc.host)
	}
	return fmt.Sprintf("the credentials from %s were refused: check them, or run `coffer login %s`", credDesc, loc.host)
}

// isTagDeleteRefused reports whether a registry does not delete tags: a
// 405 or UNSUPPORTED, or a 400, which is how registry 2.8 (and others
// that take the reference of a DELETE for a digest) answers. A 403 is
// not counted: it may be the credential's, not the registry's.
func isTagDeleteRefused(err error) bool {
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	return resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusMethodNotAllowed ||
		slices.ContainsFunc(resp.Errors, func(e errcode.Error) bool { return e.Code == errcode.ErrorCodeUnsupported })
}

// isOverwriteRefused reports whether a registry refused to move an
// existing tag to another manifest, as immutable tags do: with 409 or
// 412 (Harbor's immutability rules), or with 400 or 403 and TAG_INVALID
// or DENIED, or a message that says so (ECR: "already exists ... cannot
// be overwritten"). A manifest the registry finds wrong
// (MANIFEST_BLOB_UNKNOWN, MANIFEST_INVALID) is not that.
func isOverwriteRefused(err error) bool {
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	switch resp.StatusCode {
	case http.StatusConflict, http.StatusPreconditionFailed:
		return true
	case http.StatusBadRequest, http.StatusForbidden:
		return slices.ContainsFunc(resp.Errors, func(e errcode.Error) bool {
			msg := strings.ToLower(e.Message)
			return e.Code == "TAG_INVALID" || e.Code == errcode.ErrorCodeDenied ||
				strings.Contains(msg, "immutab") || strings.Contains(msg, "overwrit")
		})
	}
	return false
}

// isRefused reports whether a registry refused an operation outright
// (405, 403, or Distribution's UNSUPPORTED), as GHCR and Docker Hub do
// for deletes.
func isRefused(err error) bool {
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	if resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusForbidden {
		return true
	}
	for _, e := range resp.Errors {
		if e.Code == errcode.ErrorCodeUnsupported {
			return true
		}
	}
	return false
}
