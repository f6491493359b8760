package storage_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// recordingRegistry returns a registry whose openers record the scheme they
// were registered under and the location they received.
func recordingRegistry(t *testing.T, schemes ...string) (*storage.Registry, *[2]string) {
	t.Helper()
	var got [2]string
	r := storage.NewRegistry()
	for _, s := range schemes {
		r.Register(s, func(ctx context.Context, location string) (storage.Store, error) {
			got = [2]string{s, location}
			return nil, nil
		})
	}
	return r, &got
}

func TestRegistryOpen(t *testing.T) {
	tests := []struct {
		location   string
		wantScheme string // empty when Open must fail
		wantErr    []string
		wantIs     error
	}{
		{location: "/srv/backup", wantScheme: "fs"},
		{location: "relative/dir", wantScheme: "fs"},
		{location: ".", wantScheme: "fs"},
		{location: "fs:///srv/backup", wantScheme: "fs"},
		{location: "FS:///srv/backup", wantScheme: "fs"},
		{location: "oci://registry.example/coffer/repo", wantScheme: "oci"},
		{location: "dir/a://b", wantScheme: "fs"}, // not a valid scheme, so a path
		{location: "1ab://x", wantScheme: "fs"},
		{location: "", wantErr: []string{"empty"}, wantIs: storage.ErrBadLocation},
		{location: "   ", wantErr: []string{"empty"}, wantIs: storage.ErrBadLocation},
		{location: "://x", wantErr: []string{"empty scheme"}, wantIs: storage.ErrBadLocation},
		{
			location: "s3://key:secret@bucket/x",
			wantErr:  []string{`"s3"`, "known schemes: fs, oci", "oci://host/repo"},
			wantIs:   storage.ErrUnknownScheme,
		},
		// Paths that merely contain a colon are directories.
		{location: "./a:b", wantScheme: "fs"},
		{location: "/tmp/a:b", wantScheme: "fs"},
		{location: "dir/oci:host", wantScheme: "fs"},
		{location: "C:\\backup", wantScheme: "fs"},
		{location: "C:/backup", wantScheme: "fs"},
		{location: "fs//x", wantScheme: "fs"},
		{location: "ocifoo//x", wantScheme: "fs"},
		// Mistyped schemes are refused before any opener runs.
		{location: "oci:host/repo", wantErr: []string{"mistyped oci://", "write oci://host/repo", "./oci:host/repo"}, wantIs: storage.ErrBadLocation},
		{location: "oci:/host/repo", wantErr: []string{"mistyped oci://", "write oci://host/repo"}, wantIs: storage.ErrBadLocation},
		{location: "OCI:host/repo", wantErr: []string{"mistyped oci://", "write oci://host/repo"}, wantIs: storage.ErrBadLocation},
		{location: "oci//host/repo", wantErr: []string{"mistyped oci://", "write oci://host/repo"}, wantIs: storage.ErrBadLocation},
		{location: "oci:", wantErr: []string{"mistyped oci://"}, wantIs: storage.ErrBadLocation},
		{location: "oci:/", wantErr: []string{"mistyped oci://"}, wantIs: storage.ErrBadLocation},
		// s3: alone may be written without "//" (a bucket on AWS), so
		// without an s3 backend it is an unknown scheme.
		{location: "s3:bucket/x", wantErr: []string{`"s3"`, "known schemes: fs, oci"}, wantIs: storage.ErrUnknownScheme},
		{location: "sftp:host/x", wantErr: []string{`"sftp:"`, "known schemes: fs, oci", "oci://host/repo", "./sftp:host/x"}, wantIs: storage.ErrBadLocation},
		{location: "a:b", wantErr: []string{`"a:"`, "./a:b"}, wantIs: storage.ErrBadLocation},
		{location: "fs:/srv/backup", wantErr: []string{`"fs:"`, "./fs:/srv/backup"}, wantIs: storage.ErrBadLocation},
	}
	for _, tt := range tests {
		t.Run(tt.location, func(t *testing.T) {
			r, got := recordingRegistry(t, "oci", "fs")
			_, err := r.Open(context.Background(), tt.location)
			if tt.wantScheme != "" {
				if err != nil {
					t.Fatalf("Open(%q) = %v, want nil", tt.location, err)
				}
				if want := [2]string{tt.wantScheme, tt.location}; *got != want {
					t.Fatalf("Open(%q) called opener %q with %q, want %q with %q",
						tt.location, got[0], got[1], want[0], want[1])
				}
				return
			}
			if err == nil {
				t.Fatalf("Open(%q) succeeded (opener %q), want error", tt.location, got[0])
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Open(%q) error %q does not contain %q", tt.location, err, s)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("Open(%q) error %q leaks credentials", tt.location, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Open(%q) error %q is more than one line", tt.location, err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Open(%q) error %q does not wrap %q", tt.location, err, tt.wantIs)
			}
			if got[0] != "" {
				t.Errorf("Open(%q) called opener %q despite failing", tt.location, got[0])
			}
		})
	}
}

func TestRegistryOpenEmpty(t *testing.T) {
	_, err := storage.NewRegistry().Open(context.Background(), "/srv/backup")
	if !errors.Is(err, storage.ErrUnknownScheme) || !strings.Contains(err.Error(), "none registered") {
		t.Fatalf("Open on an empty registry = %v, want unknown scheme with none registered", err)
	}
}

func TestRegistryOpenerError(t *testing.T) {
	boom := errors.New("boom")
	r := storage.NewRegistry()
	r.Register("fs", func(context.Context, string) (storage.Store, error) { return nil, boom })
	if _, err := r.Open(context.Background(), "/x"); !errors.Is(err, boom) {
		t.Fatalf("Open = %v, want the opener's error", err)
	}
}

func TestRegistrySchemes(t *testing.T) {
	r, _ := recordingRegistry(t, "oci", "fs", "b2")
	if got, want := r.Schemes(), []string{"b2", "fs", "oci"}; !slices.Equal(got, want) {
		t.Fatalf("Schemes() = %q, want %q", got, want)
	}
	if got := storage.NewRegistry().Schemes(); len(got) != 0 {
		t.Fatalf("Schemes() of a new registry = %q, want none", got)
	}
}

func TestRegisterPanics(t *testing.T) {
	nop := func(context.Context, string) (storage.Store, error) { return nil, nil }
	tests := []struct {
		name   string
		scheme string
		open   storage.Opener
	}{
		{"empty scheme", "", nop},
		{"uppercase scheme", "FS", nop},
		{"scheme with separator", "fs://", nop},
		{"nil opener", "fs", nil},
		{"duplicate", "dup", nop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := storage.NewRegistry()
			r.Register("dup", nop)
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", tt.scheme)
				}
			}()
			r.Register(tt.scheme, tt.open)
		})
	}
}

func TestScheme(t *testing.T) {
	tests := []struct {
		location, want string
	}{
		{"/abs", "fs"},
		{"C:\\backup", "fs"},
		{"fs:///abs", "fs"},
		{"Oci://x", "oci"},
		{"s3+https://x", "s3+https"},
		{"s3:bucket/prefix", "s3"},
		{"S3:bucket", "s3"},
		{"s3://host/bucket", "s3"},
		{"./s3:bucket", "fs"},
		{"./oci:host", "fs"},
		{"/tmp/a:b", "fs"},
	}
	for _, tt := range tests {
		got, err := storage.Scheme(tt.location)
		if err != nil || got != tt.want {
			t.Errorf("Scheme(%q) = %q, %v; want %q", tt.location, got, err, tt.want)
		}
	}
}

// TestSchemeMistyped checks that Scheme itself, which fs.Open also uses,
// refuses a location that starts like a URL without "//".
func TestSchemeMistyped(t *testing.T) {
	for _, loc := range []string{"oci:host/repo", "oci:/host/repo", "oci:", "sftp:host", "a:b"} {
		_, err := storage.Scheme(loc)
		if !errors.Is(err, storage.ErrBadLocation) || !strings.Contains(err.Error(), "./"+loc) {
			t.Errorf("Scheme(%q) = %v, want a bad location error suggesting ./%s", loc, err, loc)
		}
	}
}

func TestBadLocationUnwraps(t *testing.T) {
	inner := errors.New("inner")
	err := storage.BadLocation(inner)
	if err.Error() != "inner" || !errors.Is(err, inner) || !errors.Is(err, storage.ErrBadLocation) {
		t.Fatalf("BadLocation(inner) = %q; want message inner, matching inner and ErrBadLocation", err)
	}
}
