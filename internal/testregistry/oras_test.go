package testregistry

import (
	"bytes"
	"strings"
	"testing"
)

func TestOras(t *testing.T) {
	out, err := Oras(t, nil, "version")
	if err != nil || !strings.Contains(out, "1.3.6") {
		t.Fatalf("oras version: %q, %v", out, err)
	}

	r := StartRegistry(t, RegistryOptions{Kind: Distribution})
	c := newRegClient(t, r, r.URL)
	layer := []byte("a layer oras should fetch")
	m, _ := c.pushArtifact("oras/repo", "v1", layer)
	ref := r.Host + "/oras/repo"

	out, err = Oras(t, nil, "repo", "tags", "--plain-http", ref)
	if err != nil || strings.TrimSpace(out) != "v1" {
		t.Errorf("oras repo tags: %q, %v", out, err)
	}
	out, err = Oras(t, nil, "manifest", "fetch", "--plain-http", ref+":v1")
	if err != nil || !bytes.Equal(bytes.TrimSpace([]byte(out)), m) {
		t.Errorf("oras manifest fetch: %q, %v", out, err)
	}
	out, err = Oras(t, nil, "blob", "fetch", "--plain-http", "--output", "-", ref+"@"+digestOf(layer))
	if err != nil || out != string(layer) {
		t.Errorf("oras blob fetch: %q, %v", out, err)
	}
	// A failure comes back as an error that says why.
	if _, err := Oras(t, nil, "manifest", "fetch", "--plain-http", ref+":nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("oras manifest fetch of a missing tag: %v", err)
	}
}

// TestOrasCredentials checks that oras logs in with DockerEnv (as
// DOCKER_CONFIG) through the token server of a TLS registry.
func TestOrasCredentials(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{Kind: Distribution, TLS: true, Auth: AuthToken})
	newRegClient(t, r, r.URL).pushArtifact("oras/cred", "v2", []byte("x"))
	ref := r.Host + "/oras/cred"
	if _, err := Oras(t, nil, "repo", "tags", "--ca-file", r.CAFile, ref); err == nil {
		t.Error("oras without credentials listed the tags of a token registry")
	}
	issued := r.Token.Issued()
	out, err := Oras(t, r.DockerEnv(), "repo", "tags", "--ca-file", r.CAFile, ref)
	if err != nil || strings.TrimSpace(out) != "v2" {
		t.Errorf("oras repo tags with DOCKER_CONFIG: %q, %v", out, err)
	}
	if r.Token.Issued() == issued {
		t.Error("oras got no token from the token server")
	}
}
