package oci

import (
	"context"
	"fmt"
	"strings"

	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/cofferhq/coffer/storage"
)

// Login checks username and password against the registry at host and
// stores them as `docker login` does: in the docker config's credential
// helper if one is configured, else in its config.json, whose path it
// returns.
func Login(ctx context.Context, host, username, password string, opt Options) (string, error) {
	host, err := registryHost(host)
	if err != nil {
		return "", err
	}
	base, err := newTransport(opt)
	if err != nil {
		return "", err
	}
	plain, err := detectScheme(ctx, host, base, opt.InsecureHTTP)
	if err != nil {
		return "", connectError(host, err)
	}
	store, path, err := dockerStore(opt.DockerConfig)
	if err != nil {
		return "", err
	}
	reg, err := remote.NewRegistry(host)
	if err != nil {
		return "", fmt.Errorf("registry %q: %w", host, err)
	}
	reg.PlainHTTP = plain
	reg.Client = newAuthClient(host, base, credentialSource{})
	cred := auth.Credential{Username: username, Password: password}
	if err := credentials.Login(ctx, store, reg, cred); err != nil {
		return "", wrapError(location{host: host}, loginCredentials, "logging in", err)
	}
	return path, nil
}

// Logout removes the stored credentials for host. It reports whether
// there were any, and where they were looked for.
func Logout(ctx context.Context, host string, opt Options) (removed bool, path string, err error) {
	host, err = registryHost(host)
	if err != nil {
		return false, "", err
	}
	store, path, err := dockerStore(opt.DockerConfig)
	if err != nil {
		return false, "", err
	}
	// An entry that cannot be read (an auth field that does not decode)
	// is removed all the same: that is what a logout is for.
	if cred, err := store.Get(ctx, host); err == nil && cred == auth.EmptyCredential {
		return false, path, nil
	}
	if err := credentials.Logout(ctx, store, host); err != nil {
		return false, path, fmt.Errorf("removing credentials for %s from %s: %w", host, path, err)
	}
	return true, path, nil
}

// registryHost returns the registry host a login or logout names: a host
// with an optional port, oci:// and a trailing slash allowed. A
// repository path is refused, as docker login refuses it, since
// credentials are a registry's, not a repository's.
func registryHost(arg string) (string, error) {
	host := strings.TrimSuffix(arg, "/")
	for _, scheme := range []string{"oci://", "https://", "http://"} {
		if len(host) >= len(scheme) && strings.EqualFold(host[:len(scheme)], scheme) {
			host = host[len(scheme):]
			break
		}
	}
	if h, path, ok := strings.Cut(host, "/"); ok && h != "" {
		return "", storage.BadLocation(fmt.Errorf("%q names a repository (%s) on %s: credentials are a registry's; give the host alone, as in coffer login %s", arg, path, h, h))
	}
	if host == "" {
		return "", storage.BadLocation(fmt.Errorf("no registry host given: write one, as in coffer login ghcr.io"))
	}
	return host, nil
}
