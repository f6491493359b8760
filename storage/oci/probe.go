package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// capabilities are what a registry was found to do. They are probed on
// create and on first use, and cached locally.
type capabilities struct {
	Delete    string `json:"delete"`     // "allowed", "refused" or "unknown"
	Range     string `json:"range"`      // "honoured", "ignored" or "unknown"
	TagPaging string `json:"tag_paging"` // "link", "none" or "unknown"
	// TagDelete is whether DELETE of a tag (not of a digest) works:
	// "allowed", "refused", or "" until create's probe or a retired refs
	// tag finds out.
	TagDelete string    `json:"tag_delete,omitempty"`
	Probed    time.Time `json:"probed"`
}

const capsFile = "capabilities.json"

func (c *capabilities) describe() map[string]string {
	del := c.Delete
	if del == "refused" {
		del += " (space is reclaimed only by the registry's own tools)"
	}
	tagDelete := c.TagDelete
	if tagDelete == "" {
		tagDelete = "unknown"
	}
	return map[string]string{"delete": del, "tag delete": tagDelete, "range requests": c.Range, "tag paging": c.TagPaging}
}

// capabilities returns the known capabilities, loading the cache.
func (s *Store) capabilities() *capabilities {
	s.capsMu.Lock()
	defer s.capsMu.Unlock()
	if s.caps == nil {
		var c capabilities
		if b := s.cache.read(capsFile); b != nil && json.Unmarshal(b, &c) == nil {
			s.caps = &c
		}
	}
	return s.caps
}

func (s *Store) saveCaps() {
	if b, err := json.Marshal(s.caps); err == nil {
		s.cache.write(capsFile, b)
	}
}

// rangeIgnored reports whether this registry answers Range with 200.
func (s *Store) rangeIgnored() bool {
	c := s.capabilities()
	return c != nil && c.Range == "ignored"
}

func (s *Store) recordRangeIgnored() {
	s.update(func(c *capabilities) { c.Range = "ignored" })
	if s.opt.Logf != nil {
		s.opt.Logf("registry %s ignores Range requests: reading whole blobs and checking their digests instead", s.loc.host)
	}
}

func (s *Store) recordDelete(allowed bool) {
	s.update(func(c *capabilities) {
		c.Delete = map[bool]string{true: "allowed", false: "refused"}[allowed]
	})
}

func (s *Store) recordTagDelete(allowed bool) {
	s.update(func(c *capabilities) {
		c.TagDelete = map[bool]string{true: "allowed", false: "refused"}[allowed]
	})
}

func (s *Store) update(f func(*capabilities)) {
	s.capabilities()
	s.capsMu.Lock()
	defer s.capsMu.Unlock()
	if s.caps == nil {
		s.caps = &capabilities{Delete: "unknown", Range: "unknown", TagPaging: "unknown"}
	}
	before := *s.caps
	f(s.caps)
	if *s.caps != before {
		s.saveCaps()
	}
}

// probe finds out what the registry does, using a blob known to exist
// (the config). It runs on create (force) and, without writing anything,
// on first use from a cache that has no record; a failure only leaves a
// capability unknown.
func (s *Store) probe(ctx context.Context, blob ocispec.Descriptor, force bool) {
	if !force && s.capabilities() != nil {
		return
	}
	c := capabilities{Delete: "unknown", Range: "unknown", TagPaging: "unknown", Probed: time.Now().UTC()}
	if blob.Size > 1 {
		if _, err := s.readRange(ctx, blob.Digest, rangeOf(0, 1)); err == nil {
			c.Range = "honoured"
		} else if err == errRangeIgnored {
			c.Range = "ignored"
		}
	}
	c.TagPaging = s.probeTagPaging(ctx)
	if force {
		c.Delete = s.probeDelete(ctx)
		if c.Delete == "allowed" {
			c.TagDelete = s.probeTagDelete(ctx)
		}
	}
	s.capsMu.Lock()
	s.caps = &c
	s.saveCaps()
	s.capsMu.Unlock()
}

// probeTagPaging asks for one tag per page and looks for a Link header.
func (s *Store) probeTagPaging(ctx context.Context) string {
	ctx = auth.AppendRepositoryScope(ctx, s.repo.Reference, auth.ActionPull)
	url := fmt.Sprintf("%s://%s/v2/%s/tags/list?n=1", s.scheme(), s.loc.host, s.loc.repo)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "unknown"
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "unknown"
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK:
		return "unknown"
	case resp.Header.Get("Link") != "":
		return "link"
	}
	return "none"
}

// probeDelete pushes an untagged tombstone manifest and deletes it. It
// writes, so it runs on create only; otherwise the first real delete
// finds out. (Asking to delete a digest that does not exist proves
// nothing: registries answer 404 before checking whether deletes are
// enabled.)
func (s *Store) probeDelete(ctx context.Context) string {
	desc, b, err := newManifest(artifactTombstone, nil, map[string]string{annotationObject: "probe", "org.cofferhq.probed": time.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return "unknown"
	}
	if err := s.pushManifest(ctx, desc, b, ""); err != nil {
		return "unknown"
	}
	switch err := s.deleteManifest(ctx, desc); {
	case err == nil:
		return "allowed"
	case isRefused(err):
		return "refused"
	}
	return "unknown"
}

// probeTagDelete pushes a tombstone under a tag of its own, deletes the
// tag, and then the manifest. It runs on create, where deletes are
// allowed, so that the first lock a backup removes is removed without
// the window of a delete by digest (see deleteTagged); "" (unknown) on
// any other failure, for a retire to find out.
func (s *Store) probeTagDelete(ctx context.Context) string {
	tag := "coffer-probe-" + newSessionID()
	desc, err := s.pushTombstone(ctx, tag)
	if err != nil {
		return ""
	}
	verdict := ""
	switch err := s.deleteTag(ctx, tag); {
	case err == nil:
		verdict = "allowed"
	case isTagDeleteRefused(err):
		verdict = "refused"
	}
	// Untagged now, or where tags cannot be deleted, untagged by this.
	_ = s.deleteManifest(ctx, desc)
	return verdict
}
