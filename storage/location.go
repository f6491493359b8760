package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ErrUnknownScheme means a location names a scheme that no Opener in the
// Registry handles.
var ErrUnknownScheme = errors.New("unknown scheme")

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
func (r *Registry) Open(ctx context.Context, location string) (Store, error) {
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
		known := r.Schemes()
		list := "none registered"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		return nil, fmt.Errorf("%w %q in store location (known schemes: %s)", ErrUnknownScheme, scheme, list)
	}
	return open(ctx, location)
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
// plain paths (including odd ones such as "dir/a://b") are local
// directories. It fails if location is empty or has an empty scheme.
func Scheme(location string) (string, error) {
	if strings.TrimSpace(location) == "" {
		return "", errors.New("store location is empty: give a directory path or a scheme://... location")
	}
	i := strings.Index(location, "://")
	if i < 0 {
		return LocalScheme, nil
	}
	if i == 0 {
		return "", errors.New(`store location has an empty scheme before "://"`)
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
