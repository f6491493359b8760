package storage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ErrUnknownScheme means a location names a scheme that no Opener in the
// Registry handles. Such errors also match ErrBadLocation.
var ErrUnknownScheme = errors.New("unknown scheme")

// ErrBadLocation means a store location is malformed: the user has to
// write it differently, and no store was touched. Errors matching it are
// made with BadLocation, so their message is only what went wrong and
// what to write instead.
var ErrBadLocation = errors.New("bad store location")

// BadLocation returns err marked as a malformed location: its message is
// err's, and errors.Is matches both err's chain and ErrBadLocation.
// Openers use it for locations they cannot parse, so that the program can
// report them as a command-line mistake rather than a store failure.
func BadLocation(err error) error { return badLocationError{err} }

type badLocationError struct{ err error }

func (e badLocationError) Error() string   { return e.err.Error() }
func (e badLocationError) Unwrap() []error { return []error{ErrBadLocation, e.err} }

// CheckPort reports whether the host[:port] of a parsed location has a
// port a connection can be made to, when it has one: a colon with nothing
// after it, or a number outside 1-65535, is a mistyped location, which
// would otherwise be dialled (on the scheme's default port, or not at
// all) and retried as if the server were down.
func CheckPort(hostport string) error {
	if !strings.HasPrefix(hostport, "[") && strings.Count(hostport, ":") > 1 {
		return fmt.Errorf("%q has more than one colon: write an IPv6 address in brackets, as [::1]:5000, and at most one :PORT", hostport)
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil // no port: the scheme's default
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	switch n, err := strconv.Atoi(port); {
	case port == "":
		return fmt.Errorf("%q has a colon but no port after it: write %s:PORT, or leave out the colon", hostport, host)
	case err != nil || n < 1 || n > 65535:
		return fmt.Errorf("%q has port %q, which is not a number from 1 to 65535", hostport, port)
	}
	return nil
}

// LocalScheme is the scheme of locations written as plain paths.
const LocalScheme = "fs"

// Opener opens the store at location. It receives the location exactly as
// the user wrote it, so that it can parse whatever syntax its scheme allows.
// Opening must not create anything: Store.Create does that.
type Opener func(ctx context.Context, location string) (Store, error)

// Registry maps location schemes to the Openers that handle them.
//
// A Registry is built explicitly by the program (see storage/all) rather
// than filled by package init functions, so that tests can use a registry
// of fakes and no import has hidden side effects. It is safe for
// concurrent use.
type Registry struct {
	mu      sync.RWMutex
	openers map[string]Opener
}

// NewRegistry returns a Registry with no schemes.
func NewRegistry() *Registry {
	return &Registry{openers: make(map[string]Opener)}
}

// Register makes open handle the locations whose scheme is scheme.
//
// Register panics if scheme is not a lowercase URL scheme, if open is nil,
// or if scheme is already registered: these are wiring mistakes that
// should stop the program at start-up rather than surface as a confusing
// error when a user opens a repository.
func (r *Registry) Register(scheme string, open Opener) {
	if !validScheme(scheme) || strings.ToLower(scheme) != scheme {
		panic(fmt.Sprintf("storage: Register: invalid scheme %q", scheme))
	}
	if open == nil {
		panic(fmt.Sprintf("storage: Register: nil Opener for scheme %q", scheme))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.openers[scheme]; dup {
		panic(fmt.Sprintf("storage: Register: scheme %q registered twice", scheme))
	}
	r.openers[scheme] = open
}

// Open opens the store at location with the Opener registered for the
// location's scheme (see Scheme). The Opener receives location unchanged.
//
// A location that looks like a mistyped scheme ("oci:host/repo",
// "oci:/host/repo", "oci//host/repo", "sftp:host") fails with
// ErrBadLocation rather than naming a local directory: creating a
// directory called "oci:host" would hide the typo until the backups are
// looked for on the registry.
func (r *Registry) Open(ctx context.Context, location string) (Store, error) {
	if err := r.checkMistyped(location); err != nil {
		return nil, err
	}
	scheme, err := Scheme(location)
	if err != nil {
		return nil, err
	}
	r.mu.RLock()
	open := r.openers[scheme]
	r.mu.RUnlock()
	if open == nil {
		// Only the scheme is quoted: the rest of a location may carry
		// credentials, and error messages end up in logs.
		return nil, BadLocation(fmt.Errorf("%w %q in store location (known schemes: %s): write oci://host/repo for a registry, or a directory path",
			ErrUnknownScheme, scheme, r.schemeList()))
	}
	return open(ctx, location)
}

// Check reports whether Open would accept location's form (a registered
// scheme, no mistyped one) without opening anything, for a location kept
// for later, as a named store's.
func (r *Registry) Check(location string) error {
	if err := r.checkMistyped(location); err != nil {
		return err
	}
	scheme, err := Scheme(location)
	if err != nil {
		return err
	}
	if !r.has(scheme) {
		return BadLocation(fmt.Errorf("%w %q in store location (known schemes: %s): write oci://host/repo for a registry, or a directory path",
			ErrUnknownScheme, scheme, r.schemeList()))
	}
	return nil
}

// schemeList names the registered schemes for an error message.
func (r *Registry) schemeList() string {
	if known := r.Schemes(); len(known) > 0 {
		return strings.Join(known, ", ")
	}
	return "none registered"
}

// checkMistyped refuses a location that looks like a mistyped scheme,
// suggesting the registered scheme's spelling where it names one.
func (r *Registry) checkMistyped(location string) error {
	scheme, rest, ok := mistypedScheme(location)
	if !ok {
		// "oci//host/repo" is a relative path in form only: nobody names
		// a directory after a registered scheme and doubles the slash.
		head, tail, found := strings.Cut(location, "//")
		if !found || !validScheme(head) || !r.has(strings.ToLower(head)) || strings.EqualFold(head, LocalScheme) {
			return nil
		}
		scheme, rest = strings.ToLower(head), tail
	}
	if r.has(scheme) && scheme != LocalScheme {
		return BadLocation(fmt.Errorf("store location %q looks like a mistyped %s:// location: write %s://%s (or ./%s for a local directory of that name)",
			location, scheme, scheme, rest, location))
	}
	return BadLocation(fmt.Errorf("store location %q starts with %q but is no scheme://... location (known schemes: %s): write oci://host/repo for a registry, or ./%s for a local directory of that name",
		location, location[:len(scheme)+1], r.schemeList(), location))
}

// has reports whether scheme is registered.
func (r *Registry) has(scheme string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.openers[scheme] != nil
}

// opaqueSchemes are the schemes whose locations may also be written
// without "//": "s3:bucket/prefix" is a bucket on AWS, where
// "s3://host/bucket/prefix" names an endpoint.
var opaqueSchemes = []string{"s3"}

// opaqueScheme returns the scheme of a location written "scheme:rest"
// with one of opaqueSchemes.
func opaqueScheme(location string) (string, bool) {
	scheme, after, found := strings.Cut(location, ":")
	scheme = strings.ToLower(scheme)
	if !found || !slices.Contains(opaqueSchemes, scheme) || strings.HasPrefix(after, "//") {
		return "", false
	}
	return scheme, true
}

// mistypedScheme reports whether location starts like a URL, with a
// scheme and a colon, without the "//" that every coffer location with a
// scheme has (except opaqueSchemes); scheme is lowercased and rest is
// what follows the colon and any slashes. A Windows drive ("C:\backup",
// "C:/backup") is a path.
func mistypedScheme(location string) (scheme, rest string, ok bool) {
	if _, ok := opaqueScheme(location); ok {
		return "", "", false
	}
	i := strings.IndexByte(location, ':')
	if i <= 0 || !validScheme(location[:i]) {
		return "", "", false
	}
	after := location[i+1:]
	if strings.HasPrefix(after, "//") {
		return "", "", false
	}
	if i == 1 && (strings.HasPrefix(after, `\`) || strings.HasPrefix(after, "/")) {
		return "", "", false
	}
	return strings.ToLower(location[:i]), strings.TrimLeft(after, "/"), true
}

// Schemes returns the registered schemes in sorted order.
func (r *Registry) Schemes() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	schemes := make([]string, 0, len(r.openers))
	for s := range r.openers {
		schemes = append(schemes, s)
	}
	slices.Sort(schemes)
	return schemes
}

// Scheme returns the lowercased scheme of location: the part before "://"
// when that part is a valid URL scheme, and LocalScheme otherwise, so that
// plain paths (including odd ones such as "dir/a://b" and "./a:b") are
// local directories. It fails, with an error matching ErrBadLocation, if
// location is empty, has an empty scheme, or starts like a URL without
// "//" ("oci:host/repo"; write "./oci:host" for such a directory), which
// only opaqueSchemes may ("s3:bucket/prefix" is scheme s3).
func Scheme(location string) (string, error) {
	if strings.TrimSpace(location) == "" {
		return "", BadLocation(errors.New("store location is empty: give a directory path or a scheme://... location"))
	}
	if scheme, _, ok := mistypedScheme(location); ok {
		return "", BadLocation(fmt.Errorf(`store location %q starts with %q but lacks the "//" after it: write %s://..., or ./%s for a local directory of that name`,
			location, location[:len(scheme)+1], scheme, location))
	}
	if scheme, ok := opaqueScheme(location); ok {
		return scheme, nil
	}
	i := strings.Index(location, "://")
	if i < 0 {
		return LocalScheme, nil
	}
	if i == 0 {
		return "", BadLocation(errors.New(`store location has an empty scheme before "://": write oci://host/repo for a registry, or a directory path`))
	}
	scheme := location[:i]
	if !validScheme(scheme) {
		return LocalScheme, nil
	}
	return strings.ToLower(scheme), nil
}

// validScheme reports whether s matches RFC 3986's
// ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
