package oci

import (
	"context"
	"fmt"
	"strings"

	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
)

// Login checks username and password against the registry at host and
// stores them as `docker login` does: in the docker config's credential
// helper if one is configured, else in its config.json, whose path it
// returns.
func Login(ctx context.Context, host, username, password string, opt Options) (string, error) {
	host = strings.TrimPrefix(strings.TrimSuffix(host, "/"), "oci://")
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

// Logout removes the stored credentials for host.
func Logout(ctx context.Context, host string, opt Options) error {
	host = strings.TrimPrefix(strings.TrimSuffix(host, "/"), "oci://")
	store, path, err := dockerStore(opt.DockerConfig)
	if err != nil {
		return err
	}
	if err := credentials.Logout(ctx, store, host); err != nil {
		return fmt.Errorf("removing credentials for %s from %s: %w", host, path, err)
	}
	return nil
}
