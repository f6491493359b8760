package testregistry

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRegistryVariants starts each kind of registry in each
// configuration, pushes a tagged artifact with net/http, lists it, and
// checks that authentication is required where it should be.
func TestRegistryVariants(t *testing.T) {
	variants := []struct {
		name string
		opt  RegistryOptions
	}{
		{"plain", RegistryOptions{}},
		{"delete", RegistryOptions{Delete: true}},
		{"tls-basic", RegistryOptions{TLS: true, Auth: AuthBasic}},
		{"token", RegistryOptions{Auth: AuthToken}},
		{"tls-token-delete", RegistryOptions{TLS: true, Auth: AuthToken, Delete: true}},
	}
	for _, kind := range RegistryKinds {
		for _, v := range variants {
			t.Run(kind.String()+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				opt := v.opt
				opt.Kind = kind
				checkRegistry(t, StartRegistry(t, opt))
			})
		}
	}
}

func checkRegistry(t *testing.T, r *Registry) {
	opt := r.Options
	scheme := "http://"
	if opt.TLS {
		scheme = "https://"
	}
	if !strings.HasPrefix(r.Host, "127.0.0.1:") || r.URL != scheme+r.Host {
		t.Errorf("Host %q, URL %q", r.Host, r.URL)
	}
	if got, want := r.Location("a/b"), "oci://"+r.Host+"/a/b"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if opt.TLS != (r.CAFile != "") {
		t.Errorf("TLS %v but CAFile %q", opt.TLS, r.CAFile)
	}
	if (opt.Auth != AuthNone) != (r.Username != "" && r.Password != "") {
		t.Errorf("auth %v but credentials %q/%q", opt.Auth, r.Username, r.Password)
	}
	checkDockerConfig(t, r)
	cfg, err := os.ReadFile(r.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "addr: 127.0.0.1:") || strings.Contains(string(cfg), "debug") {
		t.Errorf("config binds to more than 127.0.0.1, or has a debug server:\n%s", cfg)
	}

	c := newRegClient(t, r, r.URL)
	anon := &regClient{t: t, base: r.URL, hc: r.Client()}

	// Authentication.
	rep, err := anon.raw(http.MethodGet, "/v2/", nil, nil, false, "")
	if err != nil {
		t.Fatal(err)
	}
	switch opt.Auth {
	case AuthNone:
		if rep.code != http.StatusOK {
			t.Fatalf("GET /v2/ without credentials: %d, want 200", rep.code)
		}
	case AuthBasic:
		if rep.code != http.StatusUnauthorized || !strings.HasPrefix(rep.hdr.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("GET /v2/ without credentials: %d %q, want 401 Basic", rep.code, rep.hdr.Get("WWW-Authenticate"))
		}
		wrong := &regClient{t: t, base: r.URL, hc: r.Client(), user: r.Username, pass: "wrong"}
		if rep, err := wrong.raw(http.MethodGet, "/v2/", nil, nil, true, ""); err != nil || rep.code != http.StatusUnauthorized {
			t.Fatalf("GET /v2/ with a wrong password: %d, %v; want 401", rep.code, err)
		}
		if rep, err := c.raw(http.MethodGet, "/v2/", nil, nil, true, ""); err != nil || rep.code != http.StatusOK {
			t.Fatalf("GET /v2/ with credentials: %d, %v; want 200", rep.code, err)
		}
	case AuthToken:
		checkTokenAuth(t, r, c, rep)
	}

	// Push, tag, list, fetch.
	layer := []byte("coffer test layer for " + t.Name())
	m, d := c.pushArtifact("coffer/test", "v1", layer)
	if tags := c.tags("coffer/test"); !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("tags = %q, want [v1]", tags)
	}
	if code, body := c.manifest("coffer/test", "v1"); code != http.StatusOK || !bytes.Equal(body, m) {
		t.Errorf("GET manifest v1: %d %s", code, body)
	}
	if code := c.blobStatus("coffer/test", digestOf(layer)); code != http.StatusOK {
		t.Errorf("HEAD blob: %d", code)
	}
	if opt.Auth != AuthNone {
		if rep, err := anon.raw(http.MethodGet, "/v2/coffer/test/tags/list", nil, nil, false, ""); err != nil || rep.code != http.StatusUnauthorized {
			t.Errorf("GET tags without credentials: %d, %v; want 401", rep.code, err)
		}
	}

	// oras agrees, with the registry's flags and credentials.
	out, err := Oras(t, nil, append([]string{"repo", "tags"}, append(r.OrasFlags(), r.Host+"/coffer/test")...)...)
	if err != nil || strings.TrimSpace(out) != "v1" {
		t.Errorf("oras repo tags: %q, %v", out, err)
	}

	// Deletion as configured.
	rep = c.do(http.MethodDelete, "/v2/coffer/test/manifests/"+d, nil, nil)
	if opt.Delete {
		if rep.code != http.StatusAccepted {
			t.Errorf("DELETE manifest with delete enabled: %d %s", rep.code, rep.body)
		}
		if code, _ := c.manifest("coffer/test", d); code != http.StatusNotFound {
			t.Errorf("GET deleted manifest: %d, want 404", code)
		}
	} else if rep.code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE manifest with delete disabled: %d %s, want 405", rep.code, rep.body)
	}
}

// checkTokenAuth checks the token flow: the challenge, the token
// endpoint's refusals, and the scope of tokens.
func checkTokenAuth(t *testing.T, r *Registry, c *regClient, rep reply) {
	t.Helper()
	if rep.code != http.StatusUnauthorized {
		t.Fatalf("GET /v2/ without credentials: %d, want 401", rep.code)
	}
	ch := parseChallenge(t, rep.hdr.Get("WWW-Authenticate"))
	if ch["realm"] != r.Token.URL || ch["service"] != r.Token.Service {
		t.Fatalf("challenge %q, want realm %q service %q", rep.hdr.Get("WWW-Authenticate"), r.Token.URL, r.Token.Service)
	}
	if r.Options.TLS != strings.HasPrefix(r.Token.URL, "https://") {
		t.Errorf("token server %s with TLS %v", r.Token.URL, r.Options.TLS)
	}
	// Basic credentials alone do not open a token registry.
	if rep, err := c.raw(http.MethodGet, "/v2/", nil, nil, true, ""); err != nil || rep.code != http.StatusUnauthorized {
		t.Fatalf("GET /v2/ with basic credentials: %d, %v; want 401", rep.code, err)
	}
	for _, cred := range [][2]string{{"", ""}, {r.Username, "wrong"}, {"nobody", r.Password}} {
		rep, err := c.token(r.Token.URL, r.Token.Service, "", cred[0], cred[1])
		if err != nil || rep.code != http.StatusUnauthorized {
			t.Fatalf("token for %q/%q: %d %s, %v; want 401", cred[0], cred[1], rep.code, rep.body, err)
		}
	}
	tok := c.fetchToken(r.Token.URL, r.Token.Service, "")
	if rep, err := c.raw(http.MethodGet, "/v2/", nil, nil, false, tok); err != nil || rep.code != http.StatusOK {
		t.Fatalf("GET /v2/ with a token: %d %s, %v; want 200\n%s", rep.code, rep.body, err, r.Logs())
	}
	// A token grants only its scope.
	rep, err := c.raw(http.MethodGet, "/v2/coffer/test/tags/list", nil, nil, false, tok)
	if err != nil || rep.code != http.StatusUnauthorized {
		t.Fatalf("GET tags with an unscoped token: %d, %v; want 401", rep.code, err)
	}
	if ch := parseChallenge(t, rep.hdr.Get("WWW-Authenticate")); ch["scope"] != "repository:coffer/test:pull" {
		t.Errorf("challenge scope %q", ch["scope"])
	}
	minted, err := r.Token.Mint("repository:coffer/test:pull")
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := c.raw(http.MethodGet, "/v2/coffer/test/tags/list", nil, nil, false, minted); err != nil || rep.code != http.StatusNotFound {
		t.Fatalf("GET tags of an empty repository with a minted token: %d %s, %v; want 404", rep.code, rep.body, err)
	}
	// The registry checks the signature, and the issuer.
	other := &TokenServer{Service: r.Token.Service, Issuer: r.Token.Issuer, username: r.Username, ttl: tokenTTL}
	ca, err := newTestCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	key, cert, err := ca.issue("token-signer", false)
	if err != nil {
		t.Fatal(err)
	}
	other.key, other.x5c = key, base64.StdEncoding.EncodeToString(cert.Raw)
	foreign, err := other.Mint("repository:coffer/test:pull")
	if err != nil {
		t.Fatal(err)
	}
	tampered := minted[:strings.LastIndexByte(minted, '.')+1] + foreign[strings.LastIndexByte(foreign, '.')+1:]
	other.key, other.x5c = r.Token.key, r.Token.x5c
	other.Issuer = "someone else"
	wrongIssuer, err := other.Mint("repository:coffer/test:pull")
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{"foreign": foreign, "tampered": tampered, "wrong issuer": wrongIssuer} {
		if rep, err := c.raw(http.MethodGet, "/v2/coffer/test/tags/list", nil, nil, false, bad); err != nil || rep.code != http.StatusUnauthorized {
			t.Errorf("GET tags with a %s token: %d %s, %v; want 401", name, rep.code, rep.body, err)
		}
	}

	// The OAuth2 password grant works too.
	resp, err := c.hc.PostForm(r.Token.URL, map[string][]string{
		"grant_type": {"password"}, "username": {r.Username}, "password": {r.Password},
		"service": {r.Token.Service}, "scope": {"repository:coffer/test:pull"}, "client_id": {"coffer-test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var oauth struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&oauth)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || oauth.AccessToken == "" {
		t.Fatalf("OAuth2 password grant: %d, %v", resp.StatusCode, err)
	}
	if rep, err := c.raw(http.MethodGet, "/v2/coffer/test/tags/list", nil, nil, false, oauth.AccessToken); err != nil || rep.code != http.StatusNotFound {
		t.Fatalf("GET tags with an OAuth2 token: %d %s, %v; want 404", rep.code, rep.body, err)
	}
}

func checkDockerConfig(t *testing.T, r *Registry) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.DockerConfig, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dc struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &dc); err != nil {
		t.Fatalf("docker config: %v: %s", err, b)
	}
	if r.Username == "" {
		if len(dc.Auths) != 0 {
			t.Errorf("docker config of a registry without auth: %s", b)
		}
		return
	}
	want := base64.StdEncoding.EncodeToString([]byte(r.Username + ":" + r.Password))
	if dc.Auths[r.Host].Auth != want {
		t.Errorf("docker config auths: %s", b)
	}
}

// TestRegistryRestartAndGC checks that tagged content survives Stop,
// Start and both kinds of garbage collection, and that garbage goes.
func TestRegistryRestartAndGC(t *testing.T) {
	for _, kind := range RegistryKinds {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			r := StartRegistry(t, RegistryOptions{Kind: kind, Delete: true})
			c := newRegClient(t, r, r.URL)
			kept := []byte("tagged layer")
			m, d := c.pushArtifact("gc/repo", "keep", kept)
			untagged := []byte("layer of an untagged manifest")
			_, ud := c.pushArtifact("gc/repo", "", untagged)
			orphan := c.pushBlob("gc/repo", []byte("a blob no manifest names"))

			host := r.Host
			r.Stop()
			if _, err := r.ping(); err == nil {
				t.Fatal("the registry still answers after Stop")
			}
			r.Stop() // a no-op
			r.Start()
			if r.Host != host {
				t.Fatalf("restarted on %s, was %s", r.Host, host)
			}
			if code, body := c.manifest("gc/repo", "keep"); code != http.StatusOK || !bytes.Equal(body, m) {
				t.Fatalf("after a restart, GET manifest: %d %s", code, body)
			}

			// Without --delete-untagged: unreferenced blobs go.
			r.GarbageCollect(t, false)
			if code := c.blobStatus("gc/repo", orphan); code != http.StatusNotFound {
				t.Errorf("after gc, HEAD of an unreferenced blob: %d, want 404", code)
			}
			if code, _ := c.manifest("gc/repo", ud); code != http.StatusOK {
				t.Errorf("after gc, GET of an untagged manifest: %d, want 200", code)
			}

			// With it, as the registry is stopped: untagged manifests and
			// their blobs go too.
			r.Stop()
			r.GarbageCollect(t, true)
			r.Start()
			if code, _ := c.manifest("gc/repo", ud); code != http.StatusNotFound {
				t.Errorf("after gc --delete-untagged, GET of an untagged manifest: %d, want 404", code)
			}
			if code := c.blobStatus("gc/repo", digestOf(untagged)); code != http.StatusNotFound {
				t.Errorf("after gc --delete-untagged, HEAD of its layer: %d, want 404", code)
			}
			for _, ref := range []string{"keep", d} {
				if code, body := c.manifest("gc/repo", ref); code != http.StatusOK || !bytes.Equal(body, m) {
					t.Errorf("after gc, GET manifest %s: %d %s", ref, code, body)
				}
			}
			for _, b := range [][]byte{kept, emptyJSON} {
				if code := c.blobStatus("gc/repo", digestOf(b)); code != http.StatusOK {
					t.Errorf("after gc, HEAD of a tagged blob: %d", code)
				}
			}
			if tags := c.tags("gc/repo"); !slices.Equal(tags, []string{"keep"}) {
				t.Errorf("after gc, tags %q", tags)
			}
		})
	}
}
