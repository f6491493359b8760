package testregistry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// regClient speaks just enough of the distribution API, with net/http,
// to check the fixtures: monolithic blob uploads, manifests, tags, and
// basic or bearer authentication.
type regClient struct {
	t          testing.TB
	base       string // registry (or proxy) URL
	hc         *http.Client
	user, pass string
	bearer     bool // fetch tokens on a Bearer challenge
	tokens     int  // tokens fetched
}

// newRegClient returns a client of r with r's credentials, talking to
// base (r.URL, or a proxy in front of it).
func newRegClient(t testing.TB, r *Registry, base string) *regClient {
	return &regClient{
		t:      t,
		base:   base,
		hc:     r.Client(),
		user:   r.Username,
		pass:   r.Password,
		bearer: r.Options.Auth == AuthToken,
	}
}

type reply struct {
	code int
	hdr  http.Header
	body []byte
}

// raw sends one request without any authentication handling but basic
// credentials (when basic is set) or a bearer token.
func (c *regClient) raw(method, target string, hdr http.Header, body []byte, basic bool, token string) (reply, error) {
	u, err := url.Parse(c.base)
	if err != nil {
		return reply{}, err
	}
	ref, err := url.Parse(target)
	if err != nil {
		return reply{}, err
	}
	req, err := http.NewRequest(method, u.ResolveReference(ref).String(), bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if basic && c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: reading the body: %w", method, target, err)
	}
	return reply{resp.StatusCode, resp.Header, b}, nil
}

// do sends a request with the client's credentials: basic ones, or a
// token fetched for the scope of a Bearer challenge.
func (c *regClient) do(method, target string, hdr http.Header, body []byte) reply {
	c.t.Helper()
	rep, err := c.raw(method, target, hdr, body, !c.bearer, "")
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, target, err)
	}
	if rep.code != http.StatusUnauthorized || !c.bearer {
		return rep
	}
	params := parseChallenge(c.t, rep.hdr.Get("WWW-Authenticate"))
	tok := c.fetchToken(params["realm"], params["service"], params["scope"])
	rep, err = c.raw(method, target, hdr, body, false, tok)
	if err != nil {
		c.t.Fatalf("%s %s (with a token): %v", method, target, err)
	}
	return rep
}

// fetchToken gets a token from realm with the client's basic credentials.
func (c *regClient) fetchToken(realm, service, scope string) string {
	c.t.Helper()
	rep, err := c.token(realm, service, scope, c.user, c.pass)
	if err != nil {
		c.t.Fatal(err)
	}
	if rep.code != http.StatusOK {
		c.t.Fatalf("token endpoint: %d %s", rep.code, rep.body)
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rep.body, &tr); err != nil || tr.Token == "" || tr.Token != tr.AccessToken {
		c.t.Fatalf("token endpoint answered %s (%v)", rep.body, err)
	}
	c.tokens++
	return tr.Token
}

// token asks realm for a token with basic credentials (none if user is
// empty).
func (c *regClient) token(realm, service, scope, user, pass string) (reply, error) {
	q := url.Values{"service": {service}}
	if scope != "" {
		q["scope"] = strings.Fields(scope)
	}
	req, err := http.NewRequest(http.MethodGet, realm+"?"+q.Encode(), nil)
	if err != nil {
		return reply{}, err
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("token endpoint: %w", err)
	}
	return reply{resp.StatusCode, resp.Header, b}, nil
}

// parseChallenge parses `Bearer realm="...",service="...",scope="..."`.
func parseChallenge(t testing.TB, h string) map[string]string {
	t.Helper()
	rest, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		t.Fatalf("not a Bearer challenge: %q", h)
	}
	m := map[string]string{}
	for rest != "" {
		k, v, ok := strings.Cut(rest, `="`)
		if !ok {
			t.Fatalf("malformed challenge %q", h)
		}
		end := strings.IndexByte(v, '"')
		if end < 0 {
			t.Fatalf("malformed challenge %q", h)
		}
		m[strings.TrimSpace(k)] = v[:end]
		rest = strings.TrimPrefix(v[end+1:], ",")
	}
	return m
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// pushBlob uploads data monolithically (POST, then PUT with the digest)
// and returns its digest.
func (c *regClient) pushBlob(repo string, data []byte) string {
	c.t.Helper()
	d := digestOf(data)
	rep := c.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if rep.code != http.StatusAccepted {
		c.t.Fatalf("POST upload: %d %s", rep.code, rep.body)
	}
	loc := rep.hdr.Get("Location")
	if loc == "" {
		c.t.Fatal("POST upload: no Location")
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	rep = c.do(http.MethodPut, loc+sep+"digest="+url.QueryEscape(d),
		http.Header{"Content-Type": {"application/octet-stream"}}, data)
	if rep.code != http.StatusCreated {
		c.t.Fatalf("PUT upload: %d %s", rep.code, rep.body)
	}
	return d
}

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

// makeManifest returns an OCI image manifest with an empty config and
// the given layers (already pushed).
func makeManifest(layers ...[]byte) []byte {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		ArtifactType  string `json:"artifactType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{
		SchemaVersion: 2,
		MediaType:     ociManifest,
		ArtifactType:  "application/vnd.coffer.test.v1",
		Config:        desc{"application/vnd.oci.empty.v1+json", digestOf(emptyJSON), len(emptyJSON)},
		Layers:        []desc{},
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{"application/octet-stream", digestOf(l), len(l)})
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

var emptyJSON = []byte("{}")

// pushArtifact pushes layers, the empty config and a manifest of them
// under ref (a tag, or its digest for an untagged manifest; "" for the
// digest), and returns the manifest and its digest.
func (c *regClient) pushArtifact(repo, ref string, layers ...[]byte) ([]byte, string) {
	c.t.Helper()
	c.pushBlob(repo, emptyJSON)
	for _, l := range layers {
		c.pushBlob(repo, l)
	}
	m := makeManifest(layers...)
	d := digestOf(m)
	if ref == "" {
		ref = d
	}
	rep := c.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, http.Header{"Content-Type": {ociManifest}}, m)
	if rep.code != http.StatusCreated {
		c.t.Fatalf("PUT manifest %s:%s: %d %s", repo, ref, rep.code, rep.body)
	}
	if got := rep.hdr.Get("Docker-Content-Digest"); got != d {
		c.t.Fatalf("PUT manifest: Docker-Content-Digest %q, want %q", got, d)
	}
	return m, d
}

// tags lists the tags of repo.
func (c *regClient) tags(repo string) []string {
	c.t.Helper()
	rep := c.do(http.MethodGet, "/v2/"+repo+"/tags/list", nil, nil)
	if rep.code != http.StatusOK {
		c.t.Fatalf("GET tags: %d %s", rep.code, rep.body)
	}
	var tl struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(rep.body, &tl); err != nil {
		c.t.Fatalf("GET tags: %v: %s", err, rep.body)
	}
	slices.Sort(tl.Tags)
	return tl.Tags
}

// manifest fetches a manifest, returning the status and the body.
func (c *regClient) manifest(repo, ref string) (int, []byte) {
	c.t.Helper()
	rep := c.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {ociManifest}}, nil)
	return rep.code, rep.body
}

// blobStatus returns the status of HEAD on a blob.
func (c *regClient) blobStatus(repo, digest string) int {
	c.t.Helper()
	return c.do(http.MethodHead, "/v2/"+repo+"/blobs/"+digest, nil, nil).code
}
