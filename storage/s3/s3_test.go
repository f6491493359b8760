package s3

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/storagetest"
)

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in   string
		want location // zero when parsing must fail
		str  string
		err  string // a fragment of the error
	}{
		{in: "s3://127.0.0.1:9000/bucket/helloworld", want: location{endpoint: "127.0.0.1:9000", bucket: "bucket", prefix: "helloworld", lookup: "auto"}, str: "s3://127.0.0.1:9000/bucket/helloworld"},
		{in: "s3://minio.example/b-1/a/b/c/", want: location{endpoint: "minio.example", bucket: "b-1", prefix: "a/b/c", lookup: "auto"}, str: "s3://minio.example/b-1/a/b/c"},
		{in: "s3://minio.example/bucket", want: location{endpoint: "minio.example", bucket: "bucket", lookup: "auto"}, str: "s3://minio.example/bucket"},
		{in: "s3:my.bucket/backups/laptop", want: location{endpoint: awsEndpoint, aws: true, bucket: "my.bucket", prefix: "backups/laptop", lookup: "auto"}, str: "s3:my.bucket/backups/laptop"},
		{in: "s3:bucket", want: location{endpoint: awsEndpoint, aws: true, bucket: "bucket", lookup: "auto"}, str: "s3:bucket"},
		{in: "s3:bucket/p?region=eu-west-3&lookup=dns", want: location{endpoint: awsEndpoint, aws: true, bucket: "bucket", prefix: "p", region: "eu-west-3", lookup: "dns"}, str: "s3:bucket/p"},
		{in: "s3://[::1]:9000/bucket/p?insecure-http=true&lookup=path", want: location{endpoint: "[::1]:9000", bucket: "bucket", prefix: "p", lookup: "path", insecure: true}, str: "s3://[::1]:9000/bucket/p"},
		{in: "s3://key:secret@host/bucket/p", err: "must not carry credentials"},
		{in: "s3://host", err: "no bucket"},
		{in: "s3://host/", err: "no bucket"},
		{in: "s3:", err: "names no bucket"},
		{in: "s3:/bucket/p", err: "s3:bucket/prefix"},
		{in: "s3://host/Bucket/p", err: "invalid bucket name"},
		{in: "s3://host/ab/p", err: "invalid bucket name"},
		{in: "s3://host/bucket/a//b", err: "empty"},
		{in: "s3://host/bucket/a/../b", err: `".."`},
		{in: "s3://host/bucket/p#x", err: "fragment"},
		{in: "s3://host/bucket/p?lookup=sideways", err: "lookup=path"},
		{in: "s3://host/bucket/p?colour=blue", err: `unknown option "colour"`},
		{in: "s3://host/bucket/p?region=", err: "region= is empty"},
		{in: "s3://host:x/bucket/p", err: "S3 location"},
		{in: "s3://127.0.0.1:/bucket/p", err: "a colon but no port"},
		{in: "s3://127.0.0.1:99999/bucket/p", err: "not a number from 1 to 65535"},
		{in: "s3://127.0.0.1:0/bucket/p", err: "not a number from 1 to 65535"},
		{in: "s3://[::1]:65535/bucket/p", want: location{endpoint: "[::1]:65535", bucket: "bucket", prefix: "p", lookup: "auto"}, str: "s3://[::1]:65535/bucket/p"},
		{in: "oci://host/repo", err: "must start with s3"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseLocation(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, storage.ErrBadLocation) {
					t.Fatalf("parseLocation(%q) = %+v, %v; want a bad location error containing %q", tt.in, got, err, tt.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error quotes the credentials: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseLocation(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-99/1000", 0, 99, 1000, true},
		{"bytes 10-10/*", 10, 10, -1, true},
		{"bytes 10-9/100", 0, 0, 0, false},
		{"bytes -1-9/100", 0, 0, 0, false},
		{"items 0-9/100", 0, 0, 0, false},
		{"bytes 0-9", 0, 0, 0, false},
		{"bytes */100", 0, 0, 0, false},
	}
	for _, tt := range tests {
		first, last, total, ok := parseContentRange(tt.in)
		if ok != tt.ok || first != tt.first || last != tt.last || total != tt.total {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v; want %d, %d, %d, %v", tt.in, first, last, total, ok, tt.first, tt.last, tt.total, tt.ok)
		}
	}
}

// newStoreFactory returns a storagetest factory of stores under fresh
// prefixes of one bucket of srv. Small part sizes make the suite's
// 40 MiB object a multipart upload.
func newStoreFactory(srv *testregistry.S3Server, bucket string, opt Options) func(t *testing.T) storage.Store {
	var n atomic.Int64
	env := srv.Env()
	opt.Getenv = func(k string) string { return env[k] }
	opt.CAFile = srv.CAFile
	return func(t *testing.T) storage.Store {
		loc := srv.Location(bucket, fmt.Sprintf("repo-%d", n.Add(1)))
		st, err := Open(t.Context(), loc, opt)
		if err != nil {
			t.Fatalf("Open(%s): %v", loc, err)
		}
		return st
	}
}

// servers are the S3 servers the tests run against.
var servers = []testregistry.S3Kind{testregistry.VersityGW, testregistry.SeaweedFS}

func TestStore(t *testing.T) {
	for _, server := range servers {
		for _, tls := range []bool{false, true} {
			t.Run(string(server)+"/"+map[bool]string{false: "http", true: "https"}[tls], func(t *testing.T) {
				srv := testregistry.StartS3(t, testregistry.S3Options{Server: server, TLS: tls})
				srv.MakeBucket(t, "coffer")
				storagetest.Run(t, newStoreFactory(srv, "coffer", Options{MultipartAbove: 8 << 20, PartSize: MinPartSize}))
			})
		}
	}
}

// A bucket that does not exist is ErrNotFound, with advice to create it;
// wrong keys are ErrAccessDenied, naming where they came from and never
// the secret.
func TestStoreErrors(t *testing.T) {
	srv := testregistry.StartS3(t, testregistry.S3Options{})
	srv.MakeBucket(t, "coffer")
	ctx := t.Context()
	open := func(loc string, env map[string]string) *Store {
		t.Helper()
		st, err := Open(ctx, loc, Options{Getenv: func(k string) string { return env[k] }})
		if err != nil {
			t.Fatalf("Open(%s): %v", loc, err)
		}
		return st
	}

	st := open(srv.Location("missing", "repo"), srv.Env())
	_, err := st.Open(ctx)
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "bucket missing does not exist") {
		t.Errorf("Open in a missing bucket = %v; want ErrNotFound saying to create the bucket", err)
	}
	err = st.Create(ctx, []byte("config"))
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "create it") {
		t.Errorf("Create in a missing bucket = %v; want ErrNotFound saying to create the bucket", err)
	}

	st = open(srv.Location("coffer", "repo"), srv.Env())
	_, err = st.Open(ctx)
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "no coffer repository") {
		t.Errorf("Open of an empty prefix = %v; want ErrNotFound saying there is no repository", err)
	}

	const badSecret = "0123456789abcdef0123456789abcdef"
	for name, env := range map[string]map[string]string{
		"wrong secret": {"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": badSecret},
		"unknown key":  {"AWS_ACCESS_KEY_ID": "AKIAUNKNOWN", "AWS_SECRET_ACCESS_KEY": badSecret},
	} {
		t.Run(name, func(t *testing.T) {
			st := open(srv.Location("coffer", "repo"), env)
			for op, err := range map[string]error{
				"Open":   func() error { _, err := st.Open(ctx); return err }(),
				"Create": st.Create(ctx, []byte("config")),
				"Put":    st.Put(ctx, storage.KindLock, "abc", storage.BytesBody([]byte("x"))),
			} {
				if !errors.Is(err, storage.ErrAccessDenied) {
					t.Errorf("%s with %s = %v; want ErrAccessDenied", op, name, err)
					continue
				}
				if strings.Contains(err.Error(), badSecret) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
					t.Errorf("%s with %s = %q; want it to name the variables, never the secret", op, name, err)
				}
			}
		})
	}
}

// A range the object does not hold is ErrInvalidRange, decided by the
// server's answer, and a read that ends early is an error.
func TestRangeChecks(t *testing.T) {
	srv := testregistry.StartS3(t, testregistry.S3Options{})
	srv.MakeBucket(t, "coffer")
	st := newStoreFactory(srv, "coffer", Options{})(t)
	ctx := t.Context()
	data := []byte(strings.Repeat("0123456789", 100))
	if err := st.Put(ctx, storage.KindLock, "r", storage.BytesBody(data)); err != nil {
		t.Fatal(err)
	}
	for _, rng := range []storage.Range{{Offset: 990, Length: 20}, {Offset: 1000, Length: 1}, {Offset: 5000, Length: 1}} {
		rc, err := st.Get(ctx, storage.KindLock, "r", &rng)
		if !errors.Is(err, storage.ErrInvalidRange) {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("Get %v of 1000 bytes = %v; want ErrInvalidRange", rng, err)
		}
	}
	rc, err := st.Get(ctx, storage.KindLock, "r", &storage.Range{Offset: 995, Length: 5})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "56789" {
		t.Errorf("Get [995,+5) = %q, %v; want 56789", got, err)
	}
}

// rangeIgnorer answers every ranged GET with 200 and the whole object,
// fetched with another client, as a server that ignores Range (which
// HTTP allows) would. A proxy cannot drop the Range header instead: it
// is signed, and the server would refuse the request.
type rangeIgnorer struct {
	next   http.RoundTripper
	srv    *testregistry.S3Server
	t      *testing.T
	served atomic.Int64
}

func (r *rangeIgnorer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.Header.Get("Range") == "" {
		return r.next.RoundTrip(req)
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
	obj, err := r.srv.Client(r.t).GetObject(req.Context(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		return nil, err
	}
	r.served.Add(1)
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Length": {strconv.Itoa(len(data))}, "Etag": {`"x"`}, "Last-Modified": {time.Now().UTC().Format(http.TimeFormat)}},
		ContentLength: int64(len(data)), Body: io.NopCloser(bytes.NewReader(data)), Request: req,
	}, nil
}

// A server that answers a ranged GET with the whole object still gives
// exactly the range, and a range past the end is still ErrInvalidRange.
func TestRangeIgnored(t *testing.T) {
	srv := testregistry.StartS3(t, testregistry.S3Options{})
	srv.MakeBucket(t, "coffer")
	ignorer := &rangeIgnorer{next: http.DefaultTransport, srv: srv, t: t}
	st := newStoreFactory(srv, "coffer", Options{Transport: ignorer})(t)
	ctx := t.Context()
	data := []byte(strings.Repeat("0123456789", 100))
	if err := st.Put(ctx, storage.KindLock, "r", storage.BytesBody(data)); err != nil {
		t.Fatal(err)
	}
	for _, rng := range []storage.Range{{Offset: 0, Length: 1}, {Offset: 995, Length: 5}, {Offset: 123, Length: 456}} {
		rc, err := st.Get(ctx, storage.KindLock, "r", &rng)
		if err != nil {
			t.Fatalf("Get %v: %v", rng, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if want := data[rng.Offset : rng.Offset+rng.Length]; err != nil || !bytes.Equal(got, want) {
			t.Errorf("Get %v = %q, %v; want %q", rng, got, err, want)
		}
	}
	rc, err := st.Get(ctx, storage.KindLock, "r", &storage.Range{Offset: 990, Length: 20})
	if !errors.Is(err, storage.ErrInvalidRange) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Get past the end from a server that ignores Range = %v; want ErrInvalidRange", err)
	}
	if ignorer.served.Load() < 4 {
		t.Fatalf("only %d ranged GETs were answered whole: the test proves less than it claims", ignorer.served.Load())
	}
}

// An endpoint that goes away is waited for, within -retry-for, with a
// notice; one that stays away fails the operation saying so.
func TestOutage(t *testing.T) {
	srv := testregistry.StartS3(t, testregistry.S3Options{})
	srv.MakeBucket(t, "coffer")
	var notices atomic.Int64
	st := newStoreFactory(srv, "coffer", Options{RetryFor: time.Minute, Logf: func(string, ...any) { notices.Add(1) }})(t).(*Store)
	st.retry.backoff = func(int) time.Duration { return 50 * time.Millisecond }
	ctx := t.Context()
	if err := st.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	done := make(chan error, 1)
	data := bytes.Repeat([]byte("x"), 1<<20)
	go func() { done <- st.Put(ctx, storage.KindLock, "during-outage", storage.BytesBody(data)) }()
	time.Sleep(time.Second)
	srv.Start()
	if err := <-done; err != nil {
		t.Fatalf("Put across a restart: %v", err)
	}
	if n, err := st.Stat(ctx, storage.KindLock, "during-outage"); err != nil || n != int64(len(data)) {
		t.Fatalf("Stat after the outage = %d, %v; want %d", n, err, len(data))
	}
	if notices.Load() == 0 {
		t.Error("no notice of the retries")
	}

	st.opt.RetryFor = 300 * time.Millisecond
	srv.Stop()
	_, err := st.Open(ctx)
	srv.Start()
	if err == nil || !strings.Contains(err.Error(), "-retry-for") || !strings.Contains(err.Error(), "cannot reach S3 endpoint") {
		t.Errorf("Open while the endpoint stays down = %v; want it to say it retried (-retry-for) and could not reach it", err)
	}
}

// create -object-lock: refused on a bucket without Object Lock; on one
// with it, every object but locks and plans is written with a
// COMPLIANCE retention, which every client that opens the repository
// applies; a retained object can be put again (same bytes) but not
// deleted, and the refusal says until when.
func TestObjectLock(t *testing.T) {
	for _, server := range servers {
		t.Run(string(server), func(t *testing.T) { testObjectLock(t, server) })
	}
}

func testObjectLock(t *testing.T, server testregistry.S3Kind) {
	srv := testregistry.StartS3(t, testregistry.S3Options{Server: server})
	srv.MakeBucket(t, "plain")
	srv.MakeLockedBucket(t, "locked")
	env := srv.Env()
	ctx := t.Context()
	open := func(loc string, days int) *Store {
		t.Helper()
		st, err := Open(ctx, loc, Options{ObjectLockDays: days, Getenv: func(k string) string { return env[k] }})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	err := open(srv.Location("plain", "repo"), 1).Create(ctx, []byte("config"))
	if err == nil || !strings.Contains(err.Error(), "does not have Object Lock enabled") {
		t.Fatalf("Create -object-lock on a bucket without Object Lock = %v; want a refusal that says so", err)
	}
	if _, err := open(srv.Location("plain", "repo"), 0).Open(ctx); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the refused Create left something behind: Open = %v", err)
	}

	st := open(srv.Location("locked", "repo"), 2)
	if err := st.Create(ctx, []byte("config")); err != nil {
		t.Fatalf("Create -object-lock on a bucket with Object Lock: %v", err)
	}
	// Another client, which is not told, applies the setting too.
	other := open(srv.Location("locked", "repo"), 0)
	if _, err := other.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if d := other.Describe(ctx)["object lock"]; !strings.Contains(d, "2 days") {
		t.Errorf("Describe of a retained repository: object lock = %q", d)
	}
	pack := []byte("pack bytes")
	name := fmt.Sprintf("%x", sha256Sum(pack))
	for _, s := range []*Store{st, other} {
		if err := s.Put(ctx, storage.KindPack, name, storage.BytesBody(pack)); err != nil {
			t.Fatalf("Put of a retained pack (again): %v", err)
		}
	}
	mode, until, err := other.retainedUntil(ctx, other.key(storage.KindPack, name), "")
	if err != nil || mode != string(minio.Compliance) ||
		until.Before(time.Now().Add(47*time.Hour)) || until.After(time.Now().Add(49*time.Hour)) {
		t.Fatalf("retention of a pack = %v, %v, %v; want COMPLIANCE for 2 days", mode, until, err)
	}
	// Locks are rewritten and removed as coffer runs: never retained.
	for i := range 2 {
		if err := other.Put(ctx, storage.KindLock, "l1", storage.BytesBody([]byte{byte(i)})); err != nil {
			t.Fatalf("overwriting a lock: %v", err)
		}
	}
	if err := other.Delete(ctx, storage.KindLock, "l1"); err != nil {
		t.Fatalf("deleting a lock: %v", err)
	}
	versioning, err := srv.Client(t).GetBucketVersioning(ctx, "locked")
	if err != nil {
		t.Fatal(err)
	}
	versioned := versioning.Enabled()
	if versioned != (server == testregistry.SeaweedFS) {
		t.Fatalf("versioning of a bucket with Object Lock on %s: %+v", server, versioning)
	}
	// On every server a delete before the retention ends is refused and
	// says until when: on a versioned bucket (SeaweedFS turns versioning
	// on with Object Lock, as AWS requires it) because the store deletes
	// by version id, which the retention refuses, where a plain DELETE
	// would add a delete marker and succeed.
	key := other.key(storage.KindPack, name)
	err = other.Delete(ctx, storage.KindPack, name)
	wantRetained(t, err, time.Now().Add(47*time.Hour), time.Now().Add(49*time.Hour))
	if n, err := other.Stat(ctx, storage.KindPack, name); err != nil || n != int64(len(pack)) {
		t.Fatalf("the retained pack after a refused delete: Stat = %d, %v", n, err)
	}
	if versions := srv.Versions(t, "locked", key); len(versions) != 1 || versions[0].IsDeleteMarker {
		t.Fatalf("versions of the retained pack after a refused delete: %+v; want the one version", versions)
	}
	if mode, _, err := other.retainedUntil(ctx, other.loc.key(configName), ""); err != nil || mode != string(minio.Compliance) {
		t.Errorf("the config is not retained: mode %q, %v", mode, err)
	}

	// With days made seconds long, a delete after the retention ends
	// removes every version of the object.
	const day = 3 * time.Second
	shortEnv := map[string]string{testDayEnv: day.String()}
	for k, v := range env {
		shortEnv[k] = v
	}
	short, err := Open(ctx, srv.Location("locked", "short"), Options{ObjectLockDays: 1, Getenv: func(k string) string { return shortEnv[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if err := short.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	if err := short.Put(ctx, storage.KindPack, name, storage.BytesBody(pack)); err != nil {
		t.Fatal(err)
	}
	err = short.Delete(ctx, storage.KindPack, name)
	wantRetained(t, err, time.Now(), time.Now().Add(day+2*time.Second))
	other2 := []byte("another pack")
	name2 := fmt.Sprintf("%x", sha256Sum(other2))
	key2 := short.key(storage.KindPack, name2)
	if versioned {
		// A pack that an older coffer deleted with a plain DELETE: a
		// delete marker hides its retained version. It is not listed,
		// and deleting it finds nothing (deleting the marker would
		// bring it back); a backup that stores it again makes a new
		// version, and a delete after the retention removes them all.
		if err := short.Put(ctx, storage.KindPack, name2, storage.BytesBody(other2)); err != nil {
			t.Fatal(err)
		}
		if err := srv.Client(t).RemoveObject(ctx, "locked", key2, minio.RemoveObjectOptions{}); err != nil {
			t.Fatalf("a plain DELETE of a retained pack on a versioned bucket = %v; want a delete marker", err)
		}
		if names := listNames(t, short, storage.KindPack); len(names) != 1 || names[0] != name {
			t.Fatalf("packs listed with one deleted by a delete marker: %v; want only %s", names, name)
		}
		if err := short.Delete(ctx, storage.KindPack, name2); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Delete of a pack behind a delete marker = %v; want ErrNotFound", err)
		}
		if versions := srv.Versions(t, "locked", key2); len(versions) != 2 {
			t.Fatalf("versions of a pack behind a delete marker after Delete: %+v; want the version and the marker", versions)
		}
		if err := short.Put(ctx, storage.KindPack, name2, storage.BytesBody(other2)); err != nil {
			t.Fatalf("storing again a pack behind a delete marker: %v", err)
		}
		if n, err := short.Stat(ctx, storage.KindPack, name2); err != nil || n != int64(len(other2)) {
			t.Fatalf("a pack stored again over its delete marker: Stat = %d, %v", n, err)
		}
	}
	time.Sleep(day + time.Second) // the last retention, from the last Put, has ended
	for _, n := range []string{name, name2} {
		if n == name2 && !versioned {
			continue
		}
		if err := short.Delete(ctx, storage.KindPack, n); err != nil {
			t.Fatalf("Delete after the retention ended: %v", err)
		}
		if versions := srv.Versions(t, "locked", short.key(storage.KindPack, n)); len(versions) != 0 {
			t.Fatalf("versions left after a delete once the retention ended: %+v", versions)
		}
		if _, err := short.Stat(ctx, storage.KindPack, n); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Stat of a deleted pack = %v", err)
		}
	}
	if names := listNames(t, short, storage.KindPack); len(names) != 0 {
		t.Fatalf("packs listed after their deletes: %v", names)
	}
}

// wantRetained checks that err is a delete refused by Object Lock, with
// a retention date between from and to.
func wantRetained(t *testing.T, err error, from, to time.Time) {
	t.Helper()
	var retained *RetainedError
	if !errors.As(err, &retained) || !errors.Is(err, storage.ErrRetained) || !errors.Is(err, storage.ErrAccessDenied) || !strings.Contains(err.Error(), "retained by Object Lock until") {
		t.Fatalf("Delete of a retained object = %v; want a refusal naming the retention", err)
	}
	if retained.Until.Before(from) || retained.Until.After(to) {
		t.Fatalf("Delete of a retained object: retained until %v; want between %v and %v", retained.Until, from, to)
	}
}

// listNames returns the names that st lists of kind.
func listNames(t *testing.T, st *Store, kind storage.Kind) []string {
	t.Helper()
	var names []string
	if err := st.List(t.Context(), kind, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// Without any credentials, requests go anonymous, and a refusal says
// that none were found and how to give them.
func TestNoCredentials(t *testing.T) {
	srv := testregistry.StartS3(t, testregistry.S3Options{})
	srv.MakeBucket(t, "coffer")
	env := map[string]string{"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_PROFILE": "nobody"}
	st, err := Open(t.Context(), srv.Location("coffer", "repo"), Options{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	// Not the machine's instance role, if it has one.
	st.creds.sources[2].p = &credentials.IAM{Endpoint: "http://127.0.0.1:1"}
	_, err = st.Open(t.Context())
	if !errors.Is(err, storage.ErrAccessDenied) || !strings.Contains(err.Error(), "no credentials were found") || !strings.Contains(err.Error(), "AWS_PROFILE") {
		t.Fatalf("Open without credentials = %v; want ErrAccessDenied saying none were found", err)
	}
	if got := st.Describe(t.Context())["credentials"]; !strings.HasPrefix(got, "none") {
		t.Errorf("Describe without credentials: credentials = %q", got)
	}

	// Half a key pair counts as none, and the refusal says which half.
	env["AWS_ACCESS_KEY_ID"] = "AKIAHALF"
	_, err = st.Open(t.Context())
	if !errors.Is(err, storage.ErrAccessDenied) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is empty: set both") {
		t.Fatalf("Open with only AWS_ACCESS_KEY_ID = %v; want ErrAccessDenied naming the missing secret", err)
	}
}

// Objects named by their bytes are written with If-None-Match: *, so a
// Put never replaces what is stored: the same name and size is taken
// for the same object, another size is ErrExists. Locks are replaced.
func TestConditionalPut(t *testing.T) {
	srv := testregistry.StartS3(t, testregistry.S3Options{})
	srv.MakeBucket(t, "coffer")
	st := newStoreFactory(srv, "coffer", Options{})(t).(*Store)
	ctx := t.Context()
	data := []byte("the pack's bytes")
	name := fmt.Sprintf("%x", sha256.Sum256(data))
	key := st.key(storage.KindPack, name)
	other := []byte("other bytes, same")
	other = other[:len(data)]
	if _, err := srv.Client(t).PutObject(ctx, "coffer", key, bytes.NewReader(other), int64(len(other)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, storage.KindPack, name, storage.BytesBody(data)); err != nil {
		t.Fatalf("Put over an object of the same name and size: %v", err)
	}
	if st.unconditional.Load() {
		t.Fatal("VersityGW was taken for a server without conditional writes")
	}
	rc, err := st.Get(ctx, storage.KindPack, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, other) {
		t.Errorf("the Put replaced the stored object (%q), which If-None-Match forbids", got)
	}
	if err := st.Put(ctx, storage.KindPack, name, storage.BytesBody(append(data, '!'))); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Put of another size under a stored name = %v; want ErrExists", err)
	}
	for _, b := range []string{"first", "second"} {
		if err := st.Put(ctx, storage.KindLock, "l", storage.BytesBody([]byte(b))); err != nil {
			t.Fatalf("Put of lock %s: %v", b, err)
		}
	}
}

// lostAnswers stores a Put but answers it 503, as a proxy that drops the
// answer does, then fails the first HEAD after it, as a second fault in
// a row would.
type lostAnswers struct {
	next      http.RoundTripper
	puts      atomic.Int64
	heads     atomic.Int64
	armedHead atomic.Bool
}

func (l *lostAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	fail := false
	switch {
	case req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/packs/") && l.puts.Add(1) == 1:
		fail = resp.StatusCode == http.StatusOK
		l.armedHead.Store(fail)
	case req.Method == http.MethodHead && l.armedHead.Swap(false):
		l.heads.Add(1)
		fail = true
	}
	if !fail {
		return resp, nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	body := "<Error><Code>ServiceUnavailable</Code><Message>lost</Message></Error>"
	return &http.Response{
		StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/xml"}, "Content-Length": {strconv.Itoa(len(body))}},
		ContentLength: int64(len(body)), Body: io.NopCloser(strings.NewReader(body)), Request: req,
	}, nil
}

// A Put whose answer was lost finds its name taken when tried again
// (412, If-None-Match) and looks at what is there; a failure of that
// look is tried again too, not taken for the 412's verdict.
func TestPutAnswerLost(t *testing.T) {
	srv := testregistry.StartS3(t, testregistry.S3Options{})
	srv.MakeBucket(t, "coffer")
	lost := &lostAnswers{next: http.DefaultTransport}
	st := newStoreFactory(srv, "coffer", Options{Transport: lost, RetryFor: time.Minute})(t).(*Store)
	st.retry.backoff = func(int) time.Duration { return 10 * time.Millisecond }
	ctx := t.Context()
	if err := st.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("a pack whose answer is lost "), 150)
	name := fmt.Sprintf("%x", sha256.Sum256(data))
	if err := st.Put(ctx, storage.KindPack, name, storage.BytesBody(data)); err != nil {
		t.Fatalf("Put whose answer was lost: %v", err)
	}
	if st.unconditional.Load() {
		t.Fatal("the endpoint was taken for one without conditional writes: the test proves nothing")
	}
	if lost.heads.Load() != 1 {
		t.Fatalf("%d HEADs failed after the lost answer, want 1: the test proves less than it claims", lost.heads.Load())
	}
	rc, err := st.Get(ctx, storage.KindPack, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored pack reads back %d bytes, %v; want the %d put", len(got), err, len(data))
	}
}

// corruptPuts records the headers of every PUT and, when corrupt is
// set, flips a byte of the body of the first one, as a fault between
// coffer and the server would.
type corruptPuts struct {
	next    http.RoundTripper
	corrupt bool
	mu      sync.Mutex
	headers []http.Header
}

func (c *corruptPuts) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPut {
		return c.next.RoundTrip(req)
	}
	c.mu.Lock()
	first := len(c.headers) == 0
	c.headers = append(c.headers, req.Header.Clone())
	c.mu.Unlock()
	if first && c.corrupt && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body[len(body)/2] ^= 0xff
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return c.next.RoundTrip(req)
}

// A single PUT carries the body's CRC32C instead of Content-MD5, and
// an unsigned payload (no second hash of the body over plain HTTP); the
// server checks the body against the CRC32C: a body changed on the way
// is refused, not stored.
func TestPutChecksum(t *testing.T) {
	for _, server := range servers {
		t.Run(string(server), func(t *testing.T) { testPutChecksum(t, server) })
	}
}

func testPutChecksum(t *testing.T, server testregistry.S3Kind) {
	srv := testregistry.StartS3(t, testregistry.S3Options{Server: server})
	srv.MakeBucket(t, "coffer")
	corrupt := &corruptPuts{next: http.DefaultTransport, corrupt: true}
	st := newStoreFactory(srv, "coffer", Options{Transport: corrupt})(t)
	ctx := t.Context()
	data := bytes.Repeat([]byte("a pack changed on the way "), 1000)
	name := fmt.Sprintf("%x", sha256.Sum256(data))
	if err := st.Put(ctx, storage.KindPack, name, storage.BytesBody(data)); err == nil {
		t.Fatal("Put of a body changed on the way succeeded; want the server to refuse it")
	}
	if _, err := st.Stat(ctx, storage.KindPack, name); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after the refused Put, Stat = %v; want ErrNotFound", err)
	}
	if err := st.Put(ctx, storage.KindPack, name, storage.BytesBody(data)); err != nil {
		t.Fatalf("Put again, unchanged: %v", err)
	}
	want := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))))
	corrupt.mu.Lock()
	defer corrupt.mu.Unlock()
	for i, h := range corrupt.headers {
		if got := h.Get("X-Amz-Checksum-Crc32c"); got != want {
			t.Errorf("PUT %d: x-amz-checksum-crc32c = %q, want %q", i, got, want)
		}
		if h.Get("Content-Md5") != "" || h.Get("X-Amz-Content-Sha256") != "UNSIGNED-PAYLOAD" {
			t.Errorf("PUT %d: Content-MD5 %q, X-Amz-Content-Sha256 %q; want none and UNSIGNED-PAYLOAD", i, h.Get("Content-Md5"), h.Get("X-Amz-Content-Sha256"))
		}
	}
	if len(corrupt.headers) < 2 {
		t.Fatalf("%d PUTs seen, want at least 2", len(corrupt.headers))
	}
}

// To Google Cloud Storage's endpoint, for which minio-go refuses
// checksum headers, single PUTs carry Content-MD5 instead.
func TestPutContentMD5(t *testing.T) {
	srv := testregistry.StartS3(t, testregistry.S3Options{})
	srv.MakeBucket(t, "coffer")
	rec := &corruptPuts{next: http.DefaultTransport}
	st := newStoreFactory(srv, "coffer", Options{Transport: rec})(t).(*Store)
	st.md5 = true // as Open sets it for storage.googleapis.com
	data := []byte("a pack for Google's endpoint")
	if err := st.Put(t.Context(), storage.KindPack, fmt.Sprintf("%x", sha256.Sum256(data)), storage.BytesBody(data)); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.headers) != 1 || rec.headers[0].Get("Content-Md5") == "" || rec.headers[0].Get("X-Amz-Checksum-Crc32c") != "" {
		t.Fatalf("PUT headers %v; want one PUT with Content-MD5 and no x-amz-checksum-crc32c", rec.headers)
	}
}
