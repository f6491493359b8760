//go:build linux

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
)

// s3Harness returns a harness on prefix of bucket on srv (which it
// creates), with the server's keys in AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, and a HOME of its own so that no ~/.aws of the
// machine is read.
func s3Harness(t *testing.T, srv *testregistry.S3Server, bucket, prefix string) *harness {
	t.Helper()
	h := newHarness(t)
	h.repo = srv.Location(bucket, prefix)
	for k, v := range srv.Env() {
		h.env[k] = v
	}
	h.env["HOME"] = t.TempDir()
	return h
}

// The seed's walkthrough on s3://127.0.0.1:PORT/bucket/helloworld, on
// VersityGW and on SeaweedFS, over plain HTTP (a loopback endpoint
// without TLS) and over TLS with the test CA given with -ca-file:
// create, -silent backup of the current directory, ls in the seed's
// format, cat by prefix, restore, check -read-data; info names the
// endpoint, bucket, region and the source of the credentials.
func TestS3Walkthrough(t *testing.T) {
	tests := []struct {
		server testregistry.S3Kind
		tls    bool
	}{
		{testregistry.VersityGW, false},
		{testregistry.VersityGW, true},
		{testregistry.SeaweedFS, false},
		{testregistry.SeaweedFS, true},
	}
	for _, tt := range tests {
		tls := tt.tls
		t.Run(string(tt.server)+"/"+map[bool]string{false: "http", true: "https"}[tls], func(t *testing.T) {
			srv := testregistry.StartS3(t, testregistry.S3Options{Server: tt.server, TLS: tls})
			srv.MakeBucket(t, "bucket")
			h := s3Harness(t, srv, "bucket", "helloworld")
			var global []string
			if tls {
				global = []string{"-ca-file", srv.CAFile}
				// Without the CA, the certificate is refused, and the
				// message says how to trust it.
				r := h.at("create")
				wantOneLineError(t, r, ExitFailure, "unknown authority", "-ca-file")
			}
			at := func(args ...string) string {
				t.Helper()
				r := h.run(append(append(global, "at", h.repo), args...)...)
				if r.code != 0 {
					t.Fatalf("coffer %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
				}
				return r.stdout
			}
			src := sourceTree(t)
			t.Chdir(src)
			at("create")
			if r := h.run(append(global, "-silent", "at", h.repo, "backup")...); r.code != 0 || r.stdout != "" {
				t.Fatalf("silent backup: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			ls := at("ls")
			m := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ   ([0-9a-f]{8}) +\S+ \S+ +\d+s ` + regexp.QuoteMeta(src) + "\n$").FindStringSubmatch(ls)
			if m == nil {
				t.Fatalf("ls output %q does not match the seed's format", ls)
			}
			if got := at("cat", m[1][:3]+":LICENSE"); got != licenseText {
				t.Errorf("cat: %q", got)
			}
			restored := filepath.Join(t.TempDir(), "restored")
			at("restore", m[1][:3], "-to", restored)
			testutil.CompareTrees(t, src, restored)
			if out := at("check", "-read-data"); !strings.Contains(out, "no errors were found") {
				t.Errorf("check -read-data: %s", out)
			}
			info := at("info")
			scheme := map[bool]string{false: "http", true: "https"}[tls]
			for _, want := range []string{
				`(?m)^store endpoint +` + scheme + `://` + regexp.QuoteMeta(srv.Host) + `$`,
				`(?m)^store bucket +bucket$`,
				`(?m)^store prefix +helloworld$`,
				`(?m)^store region +us-east-1$`,
				`(?m)^store credentials +AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY$`,
				`(?m)^store versioning +off$`,
				`(?m)^store conditional writes +If-None-Match`,
			} {
				if !regexp.MustCompile(want).MatchString(info) {
					t.Errorf("info does not match %s:\n%s", want, info)
				}
			}
			if strings.Contains(info, srv.SecretKey) {
				t.Errorf("info prints the secret key:\n%s", info)
			}
			// The objects are where docs/s3.md says, as in a local
			// repository directory.
			if _, err := srv.Client(t).StatObject(t.Context(), "bucket", "helloworld/config", minio.StatObjectOptions{}); err != nil {
				t.Errorf("no config object under the prefix: %v", err)
			}
		})
	}
}

// On each S3 server: wrong keys exit 18 with one line that names where the keys came from
// and never the secret; a missing bucket exits 10 saying to create it;
// an empty prefix exits 10 saying there is no repository.
func TestS3BadInputs(t *testing.T) {
	forEachS3Server(t, testS3BadInputs)
}

// forEachS3Server runs test as a subtest on a fresh server of each kind.
func forEachS3Server(t *testing.T, test func(t *testing.T, srv *testregistry.S3Server)) {
	for _, kind := range []testregistry.S3Kind{testregistry.VersityGW, testregistry.SeaweedFS} {
		t.Run(string(kind), func(t *testing.T) {
			test(t, testregistry.StartS3(t, testregistry.S3Options{Server: kind}))
		})
	}
}

// countS3Packs counts the packs of the repository at prefix, through S3.
func countS3Packs(t *testing.T, srv *testregistry.S3Server, bucket, prefix string) int {
	n := 0
	for obj := range srv.Client(t).ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Prefix: prefix + "/packs/", Recursive: true}) {
		if obj.Err == nil {
			n++
		}
	}
	return n
}

func testS3BadInputs(t *testing.T, srv *testregistry.S3Server) {
	srv.MakeBucket(t, "bucket")
	h := s3Harness(t, srv, "bucket", "repo")
	h.create()

	const badSecret = "d2f1c0ffee5ecret0f7he7e575d2f1c0ffee5ecr"
	for name, env := range map[string]map[string]string{
		"wrong secret": {"AWS_SECRET_ACCESS_KEY": badSecret},
		"unknown key":  {"AWS_ACCESS_KEY_ID": "AKIACOFFERUNKNOWN", "AWS_SECRET_ACCESS_KEY": badSecret},
	} {
		t.Run(name, func(t *testing.T) {
			bad := *h
			bad.env = map[string]string{}
			for k, v := range h.env {
				bad.env[k] = v
			}
			for k, v := range env {
				bad.env[k] = v
			}
			for _, cmd := range [][]string{{"ls"}, {"backup", sourceTree(t)}, {"create"}} {
				r := bad.at(cmd...)
				wantOneLineError(t, r, ExitAccessDenied, "AWS_ACCESS_KEY_ID")
				if strings.Contains(r.stdout+r.stderr, badSecret) || strings.Contains(r.stdout+r.stderr, srv.SecretKey) {
					t.Errorf("%s printed a secret: %s%s", cmd[0], r.stdout, r.stderr)
				}
			}
		})
	}

	missing := *h
	missing.repo = srv.Location("no-such-bucket", "repo")
	wantOneLineError(t, missing.at("create"), ExitNoRepository, "bucket no-such-bucket does not exist", "create it")
	wantOneLineError(t, missing.at("ls"), ExitNoRepository, "bucket no-such-bucket does not exist")

	empty := *h
	empty.repo = srv.Location("bucket", "nothing-here")
	wantOneLineError(t, empty.at("ls"), ExitNoRepository, "no coffer repository")

	// create refuses a prefix that holds a repository, and one that
	// holds anything else.
	wantOneLineError(t, h.at("create"), ExitNoRepository, "already holds a coffer repository")
	if _, err := srv.Client(t).PutObject(t.Context(), "bucket", "photos/cat.jpg", strings.NewReader("meow"), 4, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	other := *h
	other.repo = srv.Location("bucket", "photos")
	wantOneLineError(t, other.at("create"), ExitNoRepository, "not empty", "photos/cat.jpg")
}

// s3FaultKinds are the faults a proxy can inject into S3 requests. Not
// FaultRangeLie: the Range header is part of the request's SigV4
// signature, so a proxy that drops it makes the request invalid (the
// server answers 403) rather than showing a server that ignores Range;
// storage/s3's TestRangeIgnored answers so.
var s3FaultKinds = []testregistry.FaultKind{
	testregistry.FaultTooManyRequests, testregistry.FaultInternalError, testregistry.FaultUnavailable,
	testregistry.FaultReset, testregistry.FaultSlow,
}

// On each S3 server, backup and restore through a proxy that faults 10% of the requests
// (429, 500, 503, connections reset halfway through an answer, slow
// answers): the restored tree is byte-identical and check -read-data
// passes.
func TestS3Faults(t *testing.T) {
	forEachS3Server(t, testS3Faults)
}

func testS3Faults(t *testing.T, srv *testregistry.S3Server) {
	srv.MakeBucket(t, "bucket")
	proxy := testregistry.StartFaultProxy(t, srv.URL, testregistry.FaultOptions{Rate: 0.1, Seed: 42, Kinds: s3FaultKinds})
	h := s3Harness(t, srv, "bucket", "faults")
	h.repo = "s3://" + proxy.Host + "/bucket/faults"
	src := sourceTree(t)
	if err := os.WriteFile(filepath.Join(src, "big"), testutil.RandomBytes(5, 24<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	h.mustAt("create", "-pack-size", "1") // many packs: many requests to fault
	h.backup(src)
	restored := t.TempDir()
	h.mustAt("restore", "latest", "-to", restored)
	testutil.CompareTrees(t, src, restored)
	h.checkReadData("through the fault proxy")
	faults := proxy.Faults()
	t.Logf("faults injected: %v over %d requests", faults, proxy.Total())
	for _, k := range s3FaultKinds {
		if faults[k] == 0 {
			t.Errorf("no %s fault was injected: the test proves less than it claims", k)
		}
	}
}

// On each S3 server, a backup killed with SIGKILL leaves no snapshot; the next backup
// completes, and check -read-data passes.
func TestS3InterruptedBackup(t *testing.T) {
	forEachS3Server(t, testS3InterruptedBackup)
}

func testS3InterruptedBackup(t *testing.T, srv *testregistry.S3Server) {
	srv.MakeBucket(t, "bucket")
	h := s3Harness(t, srv, "bucket", "killed")
	src := bigTree(t, 96)
	h.create()
	backup := binaryCmd(t, h, "-json", "at", h.repo, "backup", src)
	var stderr bytes.Buffer
	backup.Stderr = &stderr
	if err := backup.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for countS3Packs(t, srv, "bucket", "killed") < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := backup.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	backup.Wait()
	if n := countS3Packs(t, srv, "bucket", "killed"); n < 1 {
		t.Fatalf("no pack was stored before the kill (stderr %s)", stderr.String())
	}
	if out := h.mustAt("ls"); out != "" {
		t.Fatalf("an interrupted backup left a snapshot: %q", out)
	}
	h.backup(src)
	h.checkReadData("after a backup killed halfway")
	restored := t.TempDir()
	h.mustAt("restore", "latest", "-to", restored)
	testutil.CompareTrees(t, src, restored)
}

// sync between an S3 repository, a local one and an OCI one, each way:
// every copy lists both snapshots and restores the same tree.
func TestS3Sync(t *testing.T) {
	srv := testregistry.StartS3(t, testregistry.S3Options{})
	srv.MakeBucket(t, "bucket")
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	s3h := s3Harness(t, srv, "bucket", "main")
	src := sourceTree(t)
	s3h.create()
	s3h.backup(src, "-tag", "first")
	if err := os.WriteFile(filepath.Join(src, "more.bin"), testutil.RandomBytes(9, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	s3h.backup(src)

	on := func(repo string) *harness {
		h := *s3h
		h.repo = repo
		return &h
	}
	local := on(filepath.Join(t.TempDir(), "local"))
	ociRepo := on(reg.Location("fromlocal"))
	ociRepo.env = map[string]string{"DOCKER_CONFIG": reg.DockerConfig}
	for k, v := range s3h.env {
		ociRepo.env[k] = v
	}
	ociRepo.env["DOCKER_CONFIG"] = reg.DockerConfig
	back := on(srv.Location("bucket", "back"))

	local.mustAt("create", "-from", s3h.repo)
	if s := syncSummary(t, s3h, "to", local.repo); s["copied"] != 2.0 || s["same_keys"] != true {
		t.Errorf("s3 -> local: %v", s)
	}
	ociRepo.create()
	if s := syncSummary(t, ociRepo, "from", local.repo); s["copied"] != 2.0 {
		t.Errorf("local -> oci: %v", s)
	}
	back.create()
	if s := syncSummary(t, ociRepo, "to", back.repo); s["copied"] != 2.0 {
		t.Errorf("oci -> s3: %v", s)
	}
	if s := syncSummary(t, s3h, "from", back.repo); s["copied"] != 0.0 || s["skipped"] != 2.0 {
		t.Errorf("s3 from the copy of its copies: %v", s)
	}

	want := filepath.Join(t.TempDir(), "want")
	s3h.mustAt("restore", "latest", "-to", want)
	testutil.CompareTrees(t, src, want)
	for _, h := range []*harness{local, ociRepo, back} {
		h.checkReadData("after sync to " + h.repo)
		ls := h.mustAt("ls")
		if n := strings.Count(ls, "\n"); n != 2 || !strings.Contains(ls, "[first]") {
			t.Errorf("%s lists %d snapshots: %s", h.repo, n, ls)
		}
		got := filepath.Join(t.TempDir(), "got")
		h.mustAt("restore", "latest", "-to", got)
		testutil.CompareTrees(t, want, got)
	}
}

// On each S3 server, create -object-lock DAYS: refused on a local store
// (usage) and on a bucket without Object Lock; on a bucket with it,
// backups run as ever (their locks come and go), info says so, forget
// of a snapshot still retained records its removal but says it stays
// listed until its date (exit 0), leaving the repository whole, and key
// passwd cannot delete the old key (exit 18), which still opens it.
func TestS3ObjectLock(t *testing.T) {
	forEachS3Server(t, testS3ObjectLock)
}

func testS3ObjectLock(t *testing.T, srv *testregistry.S3Server) {
	srv.MakeBucket(t, "plain")
	srv.MakeLockedBucket(t, "locked")

	local := newHarness(t)
	wantOneLineError(t, local.at("create", "-object-lock", "7"), ExitUsage, "-object-lock works on s3 stores only")
	plain := s3Harness(t, srv, "plain", "repo")
	wantOneLineError(t, plain.at("create", "-object-lock", "7"), ExitFailure, "does not have Object Lock enabled", "--object-lock-enabled-for-bucket")
	wantOneLineError(t, plain.at("create", "-object-lock", "-1"), ExitUsage, "number of days")

	h := s3Harness(t, srv, "locked", "repo")
	h.mustAt("create", "-object-lock", "7")
	src := sourceTree(t)
	first := h.backup(src)
	h.backup(src)
	if info := h.mustAt("info"); !regexp.MustCompile(`(?m)^store object lock +COMPLIANCE retention of 7 days`).MatchString(info) {
		t.Errorf("info of a repository with -object-lock:\n%s", info)
	}
	r := h.at("forget", first)
	t.Logf("forget of a retained snapshot: %s", r.stderr)
	if r.code != ExitOK || !strings.Contains(r.stderr, "1 snapshot is retained by Object Lock until") || !strings.Contains(r.stderr, "stay listed until then") {
		t.Errorf("forget of a retained snapshot: exit %d, stderr %q; want exit 0 and a note of the retention", r.code, r.stderr)
	}
	if ls := h.mustAt("ls"); strings.Count(ls, "\n") != 2 || !strings.Contains(ls, first) {
		t.Errorf("after a forget kept back by Object Lock, ls lists:\n%s", ls)
	}
	h.checkReadData("after a forget kept back by Object Lock")

	// key passwd stores the new key, then cannot delete the old one:
	// it says so, and both passphrases open the repository.
	h.env["COFFER_NEW_PASSPHRASE"] = "a new passphrase, 22 characters or more"
	r = h.at("key", "passwd")
	wantOneLineError(t, r, ExitAccessDenied, "retained by Object Lock until")
	h.mustAt("ls")
	h.env["COFFER_PASSPHRASE"] = h.env["COFFER_NEW_PASSPHRASE"]
	h.mustAt("ls")
}

// prune killed with SIGKILL at points of its run on each S3 server, each
// chosen by what it has done so far (counted through S3 listings): check
// -read-data passes every time, the next prune completes, and the kept
// snapshots restore.
func TestS3PruneKilled(t *testing.T) {
	forEachS3Server(t, testS3PruneKilled)
}

// s3State counts the objects of the repository at prefix, through S3.
func s3State(t *testing.T, srv *testregistry.S3Server, bucket, prefix string) repoState {
	var s repoState
	for obj := range srv.Client(t).ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true}) {
		if obj.Err != nil {
			continue
		}
		s.count(prefix, obj.Key)
	}
	return s
}

// count counts key, of the repository at prefix, in its kind.
func (s *repoState) count(prefix, key string) {
	switch kind, _, _ := strings.Cut(strings.TrimPrefix(key, prefix+"/"), "/"); kind {
	case "packs":
		s.packs++
	case "index":
		s.index++
	case "plans":
		s.plans++
	case "locks":
		s.locks++
	}
}

// s3Stored counts what the bucket stores of the repository at prefix:
// on a versioned bucket every version but delete markers, which a
// plain listing does not show (deleted objects whose versions stay, and
// are billed), and the number of delete markers; on a bucket without
// versioning the objects.
func s3Stored(t *testing.T, srv *testregistry.S3Server, bucket, prefix string) (stored repoState, markers int) {
	t.Helper()
	v, err := srv.Client(t).GetBucketVersioning(t.Context(), bucket)
	if err != nil || !v.Enabled() {
		return s3State(t, srv, bucket, prefix), 0
	}
	for _, obj := range srv.Versions(t, bucket, prefix+"/") {
		if obj.IsDeleteMarker {
			markers++
			continue
		}
		stored.count(prefix, obj.Key)
	}
	return stored, markers
}

// copyS3Prefix copies every object under from to the same names under to.
func copyS3Prefix(t *testing.T, srv *testregistry.S3Server, bucket, from, to string) {
	t.Helper()
	c := srv.Client(t)
	for obj := range c.ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Prefix: from + "/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		dst := to + "/" + strings.TrimPrefix(obj.Key, from+"/")
		if _, err := c.CopyObject(t.Context(), minio.CopyDestOptions{Bucket: bucket, Object: dst},
			minio.CopySrcOptions{Bucket: bucket, Object: obj.Key}); err != nil {
			t.Fatalf("copying %s: %v", obj.Key, err)
		}
	}
}

func testS3PruneKilled(t *testing.T, srv *testregistry.S3Server) {
	srv.MakeBucket(t, "bucket")
	h := s3Harness(t, srv, "bucket", "base")
	src := filepath.Join(t.TempDir(), "src")
	h.mustAt("create", "-pack-size", "1") // many packs: a prune with many steps
	ids := churnHistory(t, h, src, 12)
	h.mustAt("forget", "-keep-last", "3")
	stateOf := func(prefix string) repoState { return s3State(t, srv, "bucket", prefix) }
	// copyAs copies the repository to another prefix, with a cache of
	// its own.
	copyAs := func(prefix string) *harness {
		t.Helper()
		copyS3Prefix(t, srv, "bucket", "base", prefix)
		c := *h
		c.env = map[string]string{}
		for k, v := range h.env {
			c.env[k] = v
		}
		c.env["COFFER_CACHE_DIR"] = t.TempDir()
		c.repo = srv.Location("bucket", prefix)
		return &c
	}
	s0 := stateOf("base")
	done := copyAs("done")
	done.mustAt("prune", "-max-unused", "0%")
	final := stateOf("done")
	t.Logf("before prune: %+v; after: %+v", s0, final)
	points := []struct {
		name string
		at   func(s repoState) bool
	}{
		{"lock written", func(s repoState) bool { return s.locks > 0 }},
		{"a plan written", func(s repoState) bool { return s.plans > 0 }},
		{"index objects changed", func(s repoState) bool { return s.index != s0.index }},
		{"the first pack deleted", func(s repoState) bool { return s.packs < s0.packs }},
		{"most packs deleted", func(s repoState) bool { return s.packs <= final.packs+2 }},
	}
	midway := 0
	for i, p := range points {
		t.Run(fmt.Sprintf("kill %d %s", i, p.name), func(t *testing.T) {
			prefix := fmt.Sprintf("kill%d", i)
			c := copyAs(prefix)
			cmd := binaryCmd(t, c, "at", c.repo, "prune", "-max-unused", "0%")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
		watch:
			for !p.at(stateOf(prefix)) {
				select {
				case <-exited:
					break watch
				default:
					time.Sleep(200 * time.Microsecond)
				}
			}
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			s := stateOf(prefix)
			t.Logf("killed at %q: %+v", p.name, s)
			if s != s0 && s != final {
				midway++
			}
			c.recoversFromKilledPrune()
			restored := filepath.Join(t.TempDir(), "r")
			c.mustAt("restore", ids[len(ids)-1], "-to", restored)
			testutil.CompareTrees(t, src, restored)
		})
	}
	if midway < 3 {
		t.Errorf("only %d of %d kills left a prune half done", midway, len(points))
	}
}

// mount serves a snapshot stored in an S3 bucket, byte for byte.
func TestS3Mount(t *testing.T) {
	requireFUSE(t)
	srv := testregistry.StartS3(t, testregistry.S3Options{})
	srv.MakeBucket(t, "bucket")
	h := s3Harness(t, srv, "bucket", "mounted")
	h.create()
	src := filepath.Join(t.TempDir(), "src")
	testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 17, Files: 40, LargeFileSize: 6 << 20})
	id := h.backup(src)
	m := h.mount(t)
	snap := filepath.Join(m.dir, "snapshots", snapshotDir(t, m.dir, id))
	testutil.CompareTreesWith(t, src, snap, testutil.CompareOptions{NotSparse: true})
	if r := m.stop(t); r.code != 0 {
		t.Fatalf("mount ended with exit %d: %s", r.code, r.stderr)
	}
}

// `coffer ui` serves a repository stored in an S3 bucket: the overview
// lists its snapshot.
func TestS3UI(t *testing.T) {
	srv := testregistry.StartS3(t, testregistry.S3Options{})
	srv.MakeBucket(t, "bucket")
	h := s3Harness(t, srv, "bucket", "ui")
	h.create()
	id := h.backup(sourceTree(t))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncWriter{}
	done := make(chan int)
	go func() {
		done <- Main(ctx, Env{Args: []string{"at", h.repo, "ui", "-no-spawn"}, Stdout: out, Stderr: out,
			Getenv: func(k string) string { return h.env[k] }})
	}()
	var url string
	for i := 0; i < 200 && url == ""; i++ {
		time.Sleep(50 * time.Millisecond)
		url = regexp.MustCompile(`http://127\.0\.0\.1:\d+/\S*token=\S+`).FindString(out.String())
	}
	if url == "" {
		t.Fatalf("ui printed no URL with a token: %q", out.String())
	}
	jar, _ := cookiejar.New(nil)
	resp, err := (&http.Client{Jar: jar}).Get(url)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("with the token: %v %v", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Repository") || !strings.Contains(string(body), id) {
		t.Errorf("overview page does not list snapshot %s: %.300s", id, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("ui stopped with exit code %d, want 0: %s", code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ui did not stop after Ctrl-C")
	}
}

// prune on a bucket with Object Lock on each S3 server (SeaweedFS keeps
// versions, so deletes go by version id), with days made seconds long
// (COFFER_TEST_OBJECT_LOCK_DAY) so that retentions end during the test:
// what a retention keeps (a forgotten snapshot, the packs a prune
// repacked into and their index object) is reported with its date, exit
// 0, and the repository stays whole; once the retention has ended, the
// next prune removes the snapshot and deletes the leftovers, and the
// store shrinks.
func TestS3PruneRetained(t *testing.T) {
	forEachS3Server(t, testS3PruneRetained)
}

func testS3PruneRetained(t *testing.T, srv *testregistry.S3Server) {
	srv.MakeLockedBucket(t, "locked")
	h := s3Harness(t, srv, "locked", "repo")
	stored := func() repoState {
		t.Helper()
		s, _ := s3Stored(t, srv, "locked", "repo")
		return s
	}
	const short, long = 4 * time.Second, 40 * time.Second
	h.env["COFFER_TEST_OBJECT_LOCK_DAY"] = short.String()
	h.mustAt("create", "-object-lock", "1", "-pack-size", "1")

	// A and B share a data pack; B keeps half of it. D is kept all along.
	src := filepath.Join(t.TempDir(), "src")
	testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 3, Files: 10})
	srcD := filepath.Join(t.TempDir(), "d")
	testutil.GenerateTree(t, srcD, testutil.TreeOptions{Seed: 4, Files: 10})
	a := h.backup(src)
	entries, _ := os.ReadDir(src)
	for _, e := range entries[:len(entries)/2] {
		os.RemoveAll(filepath.Join(src, e.Name()))
	}
	b := h.backup(src)
	d := h.backup(srcD)
	time.Sleep(short + time.Second) // all of that is free to go
	if r := h.at("forget", a); r.code != 0 || strings.Contains(r.stderr, "retained") {
		t.Fatalf("forget of a snapshot whose retention ended: exit %d: %s", r.code, r.stderr)
	}

	// This prune and this backup write with a longer retention: the
	// repacked pack, its index object and C are retained.
	h.env["COFFER_TEST_OBJECT_LOCK_DAY"] = long.String()
	started := time.Now()
	if r := h.at("prune", "-max-unused", "0%"); r.code != 0 || strings.Contains(r.stderr, "retained") {
		t.Fatalf("prune of what no retention keeps: exit %d: %s", r.code, r.stderr)
	}
	srcC := filepath.Join(t.TempDir(), "c")
	testutil.GenerateTree(t, srcC, testutil.TreeOptions{Seed: 5, Files: 10})
	c := h.backup(srcC)
	h.mustAt("forget", b)
	r := h.at("forget", c)
	if r.code != 0 || !strings.Contains(r.stderr, "1 snapshot is retained by Object Lock until") {
		t.Fatalf("forget of a retained snapshot: exit %d: %s", r.code, r.stderr)
	}
	if ls := h.mustAt("ls"); !strings.Contains(ls, c) || !strings.Contains(ls, d) || strings.Count(ls, "\n") != 2 {
		t.Errorf("after forget of a retained snapshot, ls lists:\n%s", ls)
	}
	before := stored()

	r = h.at("-json", "prune", "-max-unused", "0%")
	if r.code != 0 {
		t.Fatalf("prune on retained objects: exit %d: %s", r.code, r.stderr)
	}
	var sum struct {
		Prune repo.PruneStats `json:"prune"`
	}
	if err := json.Unmarshal(summaryLine(t, r.stdout), &sum); err != nil {
		t.Fatal(err)
	}
	st := sum.Prune
	t.Logf("prune on retained objects: %+v", st)
	if st.RetainedPacks == 0 || st.RetainedBytes == 0 || st.RetainedIndex == 0 || st.RetainedSnapshots != 1 ||
		st.RetainedUntil == nil || st.RetainedUntil.Before(started.Add(long-5*time.Second)) || st.RetainedUntil.After(time.Now().Add(long+5*time.Second)) {
		t.Errorf("prune on retained objects: %+v; want retained packs, an index object and a snapshot, until about %v", st, started.Add(long))
	}
	if !strings.Contains(r.stdout, "retained by Object Lock until") || !strings.Contains(r.stdout, "a prune after that date deletes them") {
		t.Errorf("prune -json on retained objects says nothing of them: %s", r.stdout)
	}
	text := h.at("prune", "-max-unused", "0%")
	if text.code != 0 || !regexp.MustCompile(`\d+ packs? \([^)]+\), \d+ index objects?, 1 forgotten snapshot are retained by Object Lock until `).MatchString(text.stderr) {
		t.Errorf("prune again on retained objects: exit %d: %s", text.code, text.stderr)
	}
	h.checkReadData("after a prune on retained objects")
	for id, tree := range map[string]string{c: srcC, d: srcD} {
		got := filepath.Join(t.TempDir(), "got")
		h.mustAt("restore", id, "-to", got)
		testutil.CompareTrees(t, tree, got)
	}

	time.Sleep(time.Until(st.RetainedUntil.Add(time.Second)))
	r = h.at("-json", "prune", "-max-unused", "0%")
	if r.code != 0 {
		t.Fatalf("prune after the retention: exit %d: %s", r.code, r.stderr)
	}
	sum.Prune = repo.PruneStats{}
	if err := json.Unmarshal(summaryLine(t, r.stdout), &sum); err != nil {
		t.Fatal(err)
	}
	st = sum.Prune
	t.Logf("prune after the retention: %+v", st)
	if st.Deleted == 0 || st.RetainedPacks+st.RetainedIndex+st.RetainedSnapshots != 0 || st.RetainedUntil != nil {
		t.Errorf("prune after the retention ended: %+v; want the leftovers deleted", st)
	}
	after, markers := s3Stored(t, srv, "locked", "repo")
	t.Logf("store before: %+v, after: %+v", before, after)
	if after.packs >= before.packs || after.index > before.index {
		t.Errorf("the store did not shrink: %+v -> %+v", before, after)
	}
	// Nothing deleted stays behind a delete marker: what the store
	// holds is what the repository lists (locks, deleted plainly, may
	// leave markers and versions).
	if listed := s3State(t, srv, "locked", "repo"); listed.packs != after.packs || listed.index != after.index {
		t.Errorf("the bucket stores %+v (and %d delete markers) where the repository lists %+v", after, markers, listed)
	}
	if ls := h.mustAt("ls"); strings.Count(ls, "\n") != 1 || !strings.Contains(ls, d) {
		t.Errorf("after the retention and a prune, ls lists:\n%s", ls)
	}
	h.checkReadData("after the leftovers were deleted")
	got := filepath.Join(t.TempDir(), "got")
	h.mustAt("restore", d, "-to", got)
	testutil.CompareTrees(t, srcD, got)
}
