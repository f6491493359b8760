//go:build linux

package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
)

// These tests run coffer against real registries started by
// internal/testutil: CNCF Distribution v3.1.2 and Debian's registry 2.8,
// plain, with TLS and basic auth, and with token auth.

// ociHarness points a harness at a repository on a registry.
func ociHarness(t *testing.T, reg *testregistry.Registry, repo string) *harness {
	t.Helper()
	h := newHarness(t)
	h.repo = reg.Location(repo)
	h.env["DOCKER_CONFIG"] = reg.DockerConfig
	h.env["HOME"] = t.TempDir()
	return h
}

// withCA returns the global flags that make coffer trust the registry.
func withCA(reg *testregistry.Registry, args ...string) []string {
	if reg.CAFile == "" {
		return args
	}
	return append([]string{"-ca-file", reg.CAFile}, args...)
}

// The seed's walkthrough against each registry on localhost:<port>:
// create, -silent backup of the current directory, ls in the seed's
// format, cat by prefix, restore, check -read-data; the restored tree is
// identical; oras reads what coffer wrote.
func TestOCIWalkthrough(t *testing.T) {
	for _, kind := range testregistry.RegistryKinds {
		t.Run(kind.String(), func(t *testing.T) {
			reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: kind, Delete: true})
			h := ociHarness(t, reg, "helloworld")
			h.repo = "oci://localhost:" + strings.Split(reg.Host, ":")[1] + "/helloworld"
			src := sourceTree(t)
			t.Chdir(src)

			h.create()
			if r := h.run("-silent", "at", h.repo, "backup"); r.code != 0 || r.stdout != "" {
				t.Fatalf("silent backup: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			ls := h.mustAt("ls")
			m := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ   ([0-9a-f]{8}) +\S+ \S+ +\d+s ` + regexp.QuoteMeta(src) + "\n$").FindStringSubmatch(ls)
			if m == nil {
				t.Fatalf("ls output %q does not match the seed's format", ls)
			}
			if got := h.mustAt("cat", m[1][:3]+":LICENSE"); got != licenseText {
				t.Errorf("cat: %q", got)
			}
			restored := filepath.Join(t.TempDir(), "restored")
			h.mustAt("restore", m[1][:3], "-to", restored)
			testutil.CompareTrees(t, src, restored)
			h.checkReadData("in the walkthrough")
			// No credentials: info says so rather than naming a docker
			// config as their source.
			if info := h.mustAt("info"); !regexp.MustCompile(`(?m)^store credentials +none `).MatchString(info) {
				t.Errorf("info of a registry without credentials: %s", info)
			}
			assertOrasSees(t, reg, "helloworld")
		})
	}
}

// assertOrasSees shows from outside that the repository holds valid OCI
// artifacts: oras lists the tags, fetches the root index, and fetches a
// blob whose digest checks out.
func assertOrasSees(t *testing.T, reg *testregistry.Registry, repo string) {
	t.Helper()
	ref := reg.Host + "/" + repo
	tags, err := testregistry.Oras(t, reg.DockerEnv(), append([]string{"repo", "tags", ref}, reg.OrasFlags()...)...)
	if err != nil {
		t.Fatalf("oras repo tags: %v", err)
	}
	var refs string
	for _, tag := range strings.Fields(tags) {
		if strings.HasPrefix(tag, "coffer-refs-") {
			refs = tag
		}
	}
	if !strings.Contains(tags, "coffer-config") || refs == "" {
		t.Fatalf("oras repo tags: %q", tags)
	}
	out, err := testregistry.Oras(t, reg.DockerEnv(), append([]string{"manifest", "fetch", ref + ":" + refs}, reg.OrasFlags()...)...)
	if err != nil {
		t.Fatalf("oras manifest fetch: %v", err)
	}
	var m struct {
		MediaType    string `json:"mediaType"`
		ArtifactType string `json:"artifactType"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
		Layers []struct {
			MediaType, Digest string
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.ArtifactType != "application/vnd.cofferhq.refs.v1" ||
		m.MediaType != "application/vnd.oci.image.manifest.v1+json" ||
		m.Config.MediaType != "application/vnd.oci.empty.v1+json" || len(m.Layers) == 0 {
		t.Fatalf("refs manifest %s: %v", out, err)
	}
	out, err = testregistry.Oras(t, reg.DockerEnv(), append([]string{"blob", "fetch", "--output", "-", ref + "@" + m.Layers[0].Digest}, reg.OrasFlags()...)...)
	if err != nil {
		t.Fatalf("oras blob fetch: %v", err)
	}
	sum := sha256.Sum256([]byte(out))
	if "sha256:"+hex.EncodeToString(sum[:]) != m.Layers[0].Digest {
		t.Errorf("oras fetched a blob that does not match its digest %s", m.Layers[0].Digest)
	}
}

// Authentication and TLS variants, with credentials from DOCKER_CONFIG.
func TestOCIAuthAndTLS(t *testing.T) {
	tests := []testregistry.RegistryOptions{
		{Kind: testregistry.Distribution, TLS: true, Auth: testregistry.AuthBasic},
		{Kind: testregistry.Distribution, TLS: true, Auth: testregistry.AuthToken},
		{Kind: testregistry.Distribution, Auth: testregistry.AuthToken},
		{Kind: testregistry.Registry28, TLS: true, Auth: testregistry.AuthBasic},
		{Kind: testregistry.Registry28, Auth: testregistry.AuthToken},
	}
	for _, opt := range tests {
		t.Run(fmt.Sprintf("%s-tls=%v-%s", opt.Kind, opt.TLS, opt.Auth), func(t *testing.T) {
			reg := testregistry.StartRegistry(t, opt)
			h := ociHarness(t, reg, "team/backups")
			src := sourceTree(t)
			run := func(args ...string) string {
				t.Helper()
				r := h.run(withCA(reg, append([]string{"at", h.repo}, args...)...)...)
				if r.code != 0 {
					t.Fatalf("coffer %v: exit %d: %s", args, r.code, r.stderr)
				}
				if strings.Contains(r.stdout+r.stderr, reg.Password) {
					t.Errorf("coffer %v printed the registry password", args)
				}
				return r.stdout
			}
			run("create")
			run("backup", src)
			restored := t.TempDir()
			run("restore", "latest", "-to", restored)
			testutil.CompareTrees(t, src, restored)
			if out := run("check", "-read-data"); !strings.Contains(out, "no errors") {
				t.Errorf("check: %s", out)
			}
			info := run("info")
			if !regexp.MustCompile(`(?m)^store protocol +` + map[bool]string{true: "https", false: "http"}[opt.TLS] + `$`).MatchString(info) {
				t.Errorf("info: %s", info)
			}
			if !regexp.MustCompile(`(?m)^store credentials +docker config ` + regexp.QuoteMeta(filepath.Join(reg.DockerConfig, "config.json")) + `$`).MatchString(info) {
				t.Errorf("info does not name the docker config the credentials come from: %s", info)
			}
			// Aligned: every value starts in one column.
			col := -1
			for _, line := range strings.Split(strings.TrimSpace(info), "\n") {
				i := regexp.MustCompile(`^\S+( \S+)*  +`).FindStringIndex(line)
				if i == nil || col != -1 && i[1] != col {
					t.Errorf("info is not aligned at %q:\n%s", line, info)
					break
				}
				col = i[1]
			}
		})
	}
}

// Each registry failure is one line naming the registry and what to do.
func TestOCIBadInputs(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, TLS: true, Auth: testregistry.AuthBasic})

	t.Run("wrong credentials", func(t *testing.T) {
		h := ociHarness(t, reg, "r")
		h.env["COFFER_REGISTRY_USERNAME"] = reg.Username
		h.env["COFFER_REGISTRY_PASSWORD"] = "not-the-password"
		r := h.run(withCA(reg, "at", h.repo, "create")...)
		wantOneLineError(t, r, ExitAccessDenied, reg.Host, "401", "COFFER_REGISTRY_USERNAME")
		if strings.Contains(r.stderr, "not-the-password") {
			t.Error("the error shows the password")
		}
	})
	t.Run("half the credentials", func(t *testing.T) {
		for set, unset := range map[string]string{"COFFER_REGISTRY_USERNAME": "COFFER_REGISTRY_PASSWORD", "COFFER_REGISTRY_PASSWORD": "COFFER_REGISTRY_USERNAME"} {
			h := ociHarness(t, reg, "r")
			h.env[set] = reg.Username
			wantOneLineError(t, h.run(withCA(reg, "at", h.repo, "ls")...), ExitUsage, set+" is set but "+unset+" is not", "set both")
		}
	})
	t.Run("unreadable docker config credentials", func(t *testing.T) {
		for what, config := range map[string]string{
			"a credsStore that is not installed": `{"credsStore":"nosuchhelper"}`,
			"an auth field that does not decode": `{"auths":{"` + reg.Host + `":{"auth":"!!notbase64"}}}`,
			// base64 of a token with no colon, which oras-go quotes back.
			"an auth field without user:password": `{"auths":{"` + reg.Host + `":{"auth":"Z2hwX1N1cGVyU2VjcmV0VG9rZW4="}}}`,
		} {
			h := ociHarness(t, reg, "r")
			h.env["DOCKER_CONFIG"] = t.TempDir()
			if err := os.WriteFile(filepath.Join(h.env["DOCKER_CONFIG"], "config.json"), []byte(config), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Log(what)
			r := h.run(withCA(reg, "at", h.repo, "ls")...)
			wantOneLineError(t, r, ExitFailure, reg.Host,
				"reading its credentials from docker config "+filepath.Join(h.env["DOCKER_CONFIG"], "config.json"), "fix that file", "coffer login")
			if strings.Contains(r.stderr, "SuperSecret") {
				t.Errorf("the error shows the stored secret: %s", r.stderr)
			}
			if strings.Contains(config, "auths") {
				// A broken entry is what logout is for.
				if out := h.mustRun("logout", "https://"+reg.Host+"/"); !strings.Contains(out, "removed credentials") {
					t.Errorf("logout of a broken entry: %q", out)
				}
			}
		}
	})
	t.Run("missing credentials", func(t *testing.T) {
		h := ociHarness(t, reg, "r")
		h.env["DOCKER_CONFIG"] = t.TempDir()
		wantOneLineError(t, h.run(withCA(reg, "at", h.repo, "create")...), ExitAccessDenied, reg.Host, "coffer login")
	})
	t.Run("unknown CA", func(t *testing.T) {
		h := ociHarness(t, reg, "r")
		wantOneLineError(t, h.at("create"), ExitFailure, reg.Host, "unknown authority", "-ca-file")
	})
	t.Run("plain HTTP to an HTTPS port", func(t *testing.T) {
		h := ociHarness(t, reg, "r")
		for _, args := range [][]string{{"-insecure-http", "at", h.repo, "ls"}, {"at", h.repo + "?insecure-http=true", "ls"}} {
			wantOneLineError(t, h.run(args...), ExitFailure, reg.Host, "400", "speaks HTTPS", "drop -insecure-http")
		}
	})
	t.Run("missing repository", func(t *testing.T) {
		h := ociHarness(t, reg, "no/such/repo")
		wantOneLineError(t, h.run(withCA(reg, "at", h.repo, "ls")...), ExitNoRepository, "no/such/repo", reg.Host, "does not exist", "create")
	})
	t.Run("login", func(t *testing.T) {
		h := ociHarness(t, reg, "r")
		h.env["DOCKER_CONFIG"] = t.TempDir()
		r := runWithStdin(h, "wrong\n", withCA(reg, "login", "-username", reg.Username, "-password-stdin", reg.Host)...)
		wantOneLineError(t, r, ExitAccessDenied, reg.Host, "check the user name")
		if strings.Contains(r.stderr, "coffer login") {
			t.Errorf("a failed login advises running login: %s", r.stderr)
		}
		r = runWithStdin(h, reg.Password+"\n", withCA(reg, "login", "-username", reg.Username, "-password-stdin", reg.Host)...)
		if r.code != 0 {
			t.Fatalf("login: %d %s", r.code, r.stderr)
		}
		cfg, _ := os.ReadFile(filepath.Join(h.env["DOCKER_CONFIG"], "config.json"))
		if !strings.Contains(string(cfg), reg.Host) {
			t.Errorf("login did not write the docker config: %s", cfg)
		}
		h.mustRun(withCA(reg, "at", h.repo, "create")...)
		if out := h.mustRun("logout", reg.Host); !strings.Contains(out, "removed credentials for "+reg.Host) {
			t.Errorf("logout: %q", out)
		}
		wantOneLineError(t, h.run(withCA(reg, "at", h.repo, "ls")...), ExitAccessDenied, "coffer login")
		if out := h.mustRun("logout", reg.Host); !strings.Contains(out, "no credentials for "+reg.Host+" were stored") {
			t.Errorf("logout with nothing stored: %q", out)
		}
		// Credentials are a registry's: a repository location is refused.
		r = runWithStdin(h, reg.Password+"\n", withCA(reg, "login", "-username", reg.Username, "-password-stdin", "oci://"+reg.Host+"/t/a1")...)
		wantOneLineError(t, r, ExitUsage, "names a repository (t/a1)", "coffer login "+reg.Host)
		wantOneLineError(t, h.run("logout", reg.Host+"/t/a1"), ExitUsage, "names a repository")
	})
}

// A registry that refuses DELETE (405) still lets keys be removed: the
// key's tag moves to a tombstone, and the message says so.
func TestOCIDeleteRefused(t *testing.T) {
	for _, kind := range testregistry.RegistryKinds {
		t.Run(kind.String(), func(t *testing.T) {
			reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: kind, Delete: false})
			h := ociHarness(t, reg, "nodelete")
			h.create()
			if info := h.mustAt("info"); !regexp.MustCompile(`(?m)^store delete +refused`).MatchString(info) {
				t.Errorf("probe did not find DELETE refused:\n%s", info)
			}
			h.env["COFFER_NEW_PASSPHRASE"] = "second"
			h.mustAt("key", "add")
			h.env["COFFER_PASSPHRASE"] = "second"
			h.env["COFFER_NEW_PASSPHRASE"] = "third"
			r := h.at("key", "passwd")
			if r.code != 0 || !strings.Contains(r.stderr, "refuses DELETE") {
				t.Fatalf("key passwd on a registry without delete: exit %d, stderr %q", r.code, r.stderr)
			}
			wantOneLineError(t, h.at("ls"), ExitWrongPassword)
			h.env["COFFER_PASSPHRASE"] = "third"
			if out := h.mustAt("key", "list"); strings.Count(out, "\n") != 2 {
				t.Errorf("key list after passwd: %q", out)
			}
		})
	}
}

// After 30 backups with churn and a prune the tag count is small, and a
// cold ls (new cache directory) costs O(tags + manifests) requests: no
// pack is read.
func TestOCITagsAndColdListing(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	proxy := testregistry.StartFaultProxy(t, reg.URL, testregistry.FaultOptions{})
	h := ociHarness(t, reg, "churn")
	h.repo = proxy.Location("churn")
	src := t.TempDir()
	h.create()
	proxy.Reset() // create's probe deletes a manifest of its own
	for i := 0; i < 30; i++ {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i%7)), testutil.RandomBytes(int64(i), 64<<10+i), 0o644)
		h.backup(src)
	}
	tags, err := testregistry.Oras(t, reg.DockerEnv(), append([]string{"repo", "tags", reg.Host + "/churn"}, reg.OrasFlags()...)...)
	if err != nil {
		t.Fatal(err)
	}
	// Backups only add (each its refs tag) and delete nothing others
	// wrote, so a credential that may push suffices; prune merges. Its
	// own lock goes in two requests where the registry deletes tags, as
	// Distribution v3 does: the tag, then the manifest.
	if n := proxy.Requests()["DELETE manifest"]; n != 2*30 {
		t.Errorf("30 backups made %d DELETE requests, want two each (its own lock's tag and manifest)", n)
	}
	if n := strings.Count(tags, "coffer-refs-"); n != 30 {
		t.Errorf("%d refs tags after 30 backups, want one per backup: %s", n, tags)
	}
	// A cold listing reads each refs tag with one GET by tag, not a HEAD
	// and then a GET; with the cache it left, with a HEAD each (a tag may
	// name a tombstone since), and no GET.
	h.env["COFFER_CACHE_DIR"] = t.TempDir()
	proxy.Reset()
	h.mustAt("ls")
	cold := proxy.Requests()
	proxy.Reset()
	h.mustAt("ls")
	again := proxy.Requests()
	t.Logf("30 refs tags: cold ls requests %v, warm %v", cold, again)
	if cold["HEAD manifest"] >= 30 || cold["GET manifest"] < 30 {
		t.Errorf("a cold ls of 30 refs tags made %d manifest HEADs and %d GETs, want a GET each and no HEAD", cold["HEAD manifest"], cold["GET manifest"])
	}
	if again["GET manifest"] >= 30 || again["HEAD manifest"] < 30 {
		t.Errorf("an ls with a cache of 30 refs tags made %d manifest HEADs and %d GETs, want a HEAD each and no GET", again["HEAD manifest"], again["GET manifest"])
	}

	h.mustAt("prune")
	tags, err = testregistry.Oras(t, reg.DockerEnv(), append([]string{"repo", "tags", reg.Host + "/churn"}, reg.OrasFlags()...)...)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(tags)); n > 5 {
		t.Errorf("%d tags after 30 backups and a prune, want at most 5 (config, key, a few refs tags): %s", n, tags)
	}
	h.env["COFFER_CACHE_DIR"] = t.TempDir()
	proxy.Reset()
	out := h.mustAt("ls")
	if n := strings.Count(out, "\n"); n != 30 {
		t.Fatalf("ls listed %d snapshots, want 30", n)
	}
	req := proxy.Requests()
	t.Logf("cold ls requests: %v", req)
	// The capability probe of a new cache reads one byte of the config.
	if req["GET blob range"] > 1 {
		t.Errorf("a cold ls read %d ranges: it read packs", req["GET blob range"])
	}
	if writes := req["PUT manifest"] + req["DELETE manifest"] + req["POST upload"] + req["PUT upload"]; writes != 0 {
		t.Errorf("a cold ls wrote to the registry: %v", req)
	}
	// Blobs read: 30 snapshots, at most 30 index objects, the config and
	// the key. Manifests: config, key, and the few refs tags, a few
	// times over at most.
	if req["GET blob"] > 30+30+2 {
		t.Errorf("a cold ls read %d blobs: more than its snapshots, indexes, config and key", req["GET blob"])
	}
	if req["GET manifest"] > 12 || req["GET tags"] > 6 {
		t.Errorf("a cold ls made %d manifest and %d tag-list requests", req["GET manifest"], req["GET tags"])
	}

	// A reader that loads the index reads the refs as often as ls does:
	// the listing that found the snapshot serves for the plans and the
	// index objects.
	h.env["COFFER_CACHE_DIR"] = t.TempDir()
	proxy.Reset()
	h.mustAt("ls", "latest")
	withIndex := proxy.Requests()
	t.Logf("cold ls latest requests: %v", withIndex)
	for _, class := range []string{"GET tags", "HEAD manifest"} {
		if withIndex[class] > req[class] {
			t.Errorf("a cold ls of a snapshot made %d %s requests, ls %d: it read the refs again", withIndex[class], class, req[class])
		}
	}

	// With the cache an ls left, the snapshots are read from there: the
	// blobs read are the config and the key, not 30 snapshots.
	proxy.Reset()
	h.mustAt("ls")
	warm := proxy.Requests()
	t.Logf("ls with a cache requests: %v", warm)
	if warm["GET blob"] > 2 {
		t.Errorf("an ls with the cache of the ls before read %d blobs: it read the snapshots again", warm["GET blob"])
	}
}

// Two backups started at the same moment by two processes with different
// client identities both complete and both are intact.
func TestOCIConcurrentWriters(t *testing.T) {
	// Its processes start in goroutines, where a skip would not stop the test.
	testutil.SkipInShort(t, "runs the coffer binary")
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	h := ociHarness(t, reg, "shared")
	h.create()
	srcs := []string{bigTree(t, 48), sourceTree(t)}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	outs := make([][]byte, 2)
	for i, writer := range []string{"alice", "bob"} {
		cmd := binaryCmd(t, h, "at", h.repo, "backup", srcs[i])
		cmd.Env = append(cmd.Env, "COFFER_WRITER="+writer)
		wg.Go(func() { outs[i], errs[i] = cmd.CombinedOutput() })
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("backup %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	if out := h.mustAt("ls"); strings.Count(out, "\n") != 2 {
		t.Fatalf("ls after two concurrent backups: %q", out)
	}
	if out := h.mustAt("check", "-read-data"); !strings.Contains(out, "no errors") {
		t.Fatalf("check: %s", out)
	}
	for i, src := range srcs {
		id := regexp.MustCompile(`snapshot ([0-9a-f]{8}) saved`).FindSubmatch(outs[i])[1]
		restored := t.TempDir()
		h.mustAt("restore", string(id), "-to", restored)
		testutil.CompareTrees(t, src, restored)
	}
}

// Garbage collection of untagged manifests and unreferenced blobs, with
// the registry stopped, keeps everything coffer needs.
func TestOCIGarbageCollectionSafety(t *testing.T) {
	for _, kind := range testregistry.RegistryKinds {
		t.Run(kind.String(), func(t *testing.T) {
			reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: kind, Delete: true})
			h := ociHarness(t, reg, "gc")
			src := sourceTree(t)
			h.create()
			h.backup(src)
			os.WriteFile(filepath.Join(src, "more"), testutil.RandomBytes(9, 3<<20), 0o644)
			h.backup(src)
			reg.GarbageCollect(t, true)
			h.env["COFFER_CACHE_DIR"] = t.TempDir()
			if out := h.mustAt("check", "-read-data"); !strings.Contains(out, "no errors") {
				t.Fatalf("check after GC: %s", out)
			}
			restored := t.TempDir()
			h.mustAt("restore", "latest", "-to", restored)
			testutil.CompareTrees(t, src, restored)
		})
	}
}

// Under a 10% fault rate (429 with Retry-After, 500, 503, resets
// mid-body, slow answers, 200 to a Range request) a backup and a restore
// complete with byte-identical results.
func TestOCIFaults(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	proxy := testregistry.StartFaultProxy(t, reg.URL, testregistry.FaultOptions{Rate: 0.1, Seed: 42})
	h := ociHarness(t, reg, "faults")
	h.repo = proxy.Location("faults")
	src := sourceTree(t)
	os.WriteFile(filepath.Join(src, "big"), testutil.RandomBytes(5, 24<<20), 0o644)
	h.mustAt("create", "-pack-size", "1") // many packs: many requests to fault
	h.backup(src)
	// A restore makes one ranged read per pack; once a Range request is
	// answered with 200, coffer stops sending them (for that cache). So
	// restore with fresh caches until that fault has happened at least
	// once: each restore has about 26 chances in 10.
	for attempt := 0; attempt == 0 || proxy.Faults()[testregistry.FaultRangeLie] == 0 && attempt < 6; attempt++ {
		h.env["COFFER_CACHE_DIR"] = t.TempDir()
		restored := t.TempDir()
		h.mustAt("restore", "latest", "-to", restored)
		testutil.CompareTrees(t, src, restored)
	}
	if out := h.mustAt("check", "-read-data"); !strings.Contains(out, "no errors") {
		t.Fatalf("check: %s", out)
	}
	faults := proxy.Faults()
	t.Logf("faults injected: %v over %d requests", faults, proxy.Total())
	for _, k := range testregistry.FaultKinds {
		if faults[k] == 0 {
			t.Errorf("no %s fault was injected: the test proves less than it claims", k)
		}
	}
}

func runWithStdin(h *harness, stdin string, args ...string) result {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(h.t.Context(), Env{
		Args: args, Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return h.env[k] },
	})
	return result{stdout.String(), stderr.String(), code}
}

func (h *harness) mustRun(args ...string) string {
	h.t.Helper()
	r := h.run(args...)
	if r.code != 0 {
		h.t.Fatalf("coffer %v: exit %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

// A registry repository that holds another tool's artifacts is not a
// coffer repository, and create refuses it: opening it says so and names
// a tag it holds, without suggesting the create that would fail; a new
// repository path is one coffer can create in.
func TestOCIForeignRepository(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	dir := t.TempDir()
	f := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(f, []byte("not a backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	orasAt(t, reg, "push", reg.Host+"/team/notes:v1", "notes.txt")

	h := ociHarness(t, reg, "team/notes")
	r := h.run(withCA(reg, "at", h.repo, "ls")...)
	wantOneLineError(t, r, ExitNoRepository, "is not a coffer repository", `"v1"`, "give a repository path of coffer's own")
	if strings.Contains(r.stderr, "create one with") {
		t.Errorf("suggests create where create refuses: %s", r.stderr)
	}
	wantOneLineError(t, h.run(withCA(reg, "at", h.repo, "create")...), ExitNoRepository, "not empty")

	h = ociHarness(t, reg, "team/backups")
	wantOneLineError(t, h.run(withCA(reg, "at", h.repo, "ls")...), ExitNoRepository, "does not exist", "create one with")
}

// A registry whose garbage collection deleted the manifests the refs tags
// name while the tags stayed (Distribution's garbage-collect run while
// coffer wrote) fails every listing as damage, exit 15, naming the repair
// (not "try again" for ever); `repair refs` references again what this
// client read in them, and every snapshot lists, restores and checks.
// The revisions are deleted from the registry's storage, as the
// collection deletes them. Elsewhere than a registry there is nothing to
// repair.
func TestOCILostRefsManifests(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	h := ociHarness(t, reg, "lost")
	src := sourceTree(t)
	h.create()
	first := h.backup(src)
	os.WriteFile(filepath.Join(src, "new.txt"), []byte("second backup"), 0o644)
	second := h.backup(src)
	if ls := h.mustAt("ls"); !strings.Contains(ls, first) || !strings.Contains(ls, second) {
		t.Fatalf("ls before: %s", ls)
	}
	manifests := filepath.Join(reg.DataDir, "docker/registry/v2/repositories/lost/_manifests")
	tags, _ := filepath.Glob(filepath.Join(manifests, "tags", "coffer-refs-*"))
	if len(tags) == 0 {
		t.Fatal("no refs tags in the registry's storage")
	}
	for _, tag := range tags {
		link, err := os.ReadFile(filepath.Join(tag, "current", "link"))
		if err != nil {
			t.Fatal(err)
		}
		dgst := strings.TrimPrefix(strings.TrimSpace(string(link)), "sha256:")
		if err := os.RemoveAll(filepath.Join(manifests, "revisions", "sha256", dgst)); err != nil {
			t.Fatal(err)
		}
	}

	wantOneLineError(t, h.at("ls"), ExitCorrupt, filepath.Base(tags[0]), "no manifest", "coffer repair refs")
	r := h.run("-json", "at", h.repo, "repair", "refs")
	if r.code != 0 {
		t.Fatalf("repair refs: exit %d, stderr %s", r.code, r.stderr)
	}
	var retired, summaries int
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var doc struct {
			Type       string `json:"type"`
			Tag        string `json:"tag"`
			Kept, Lost int
			Retired    bool `json:"retired"`
			RepairRefs *struct {
				Retired, Left int
			} `json:"repair_refs"`
		}
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("repair refs -json line %q: %v", line, err)
		}
		switch {
		case doc.Type == "refs_tag" && doc.Retired && doc.Kept > 0 && doc.Lost == 0:
			retired++
		case doc.Type == "summary" && doc.RepairRefs != nil && doc.RepairRefs.Retired == len(tags) && doc.RepairRefs.Left == 0:
			summaries++
		default:
			t.Errorf("repair refs of %d tags this client read: unexpected document %s", len(tags), line)
		}
	}
	if retired != len(tags) || summaries != 1 {
		t.Fatalf("repair refs -json: %d refs_tag documents retired with objects kept, %d summaries; want %d and 1:\n%s", retired, summaries, len(tags), r.stdout)
	}
	if ls := h.mustAt("ls"); !strings.Contains(ls, first) || !strings.Contains(ls, second) {
		t.Fatalf("ls after repair refs: %s", ls)
	}
	h.checkReadData("after repair refs")
	restored := filepath.Join(t.TempDir(), "restored")
	h.mustAt("restore", second, "-to", restored)
	testutil.CompareTrees(t, src, filepath.Join(restored))
	if out := h.mustAt("repair", "refs"); !strings.Contains(out, "nothing to repair") {
		t.Errorf("repair refs of a whole repository: %s", out)
	}

	local := newHarness(t)
	local.create()
	wantOneLineError(t, local.at("repair", "refs"), ExitFailure, "keeps no refs tags")
	wantOneLineError(t, local.at("repair", "refs", "-dry-run"), ExitUsage, "repair needs")
	wantOneLineError(t, local.at("repair", "index", "-force"), ExitUsage, "repair needs")
}
