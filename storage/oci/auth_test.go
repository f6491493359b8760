package oci

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/storage"
)

// TestWrongCredentials checks that refused or missing credentials give
// errors that name the registry and say what to do, and never show the
// password.
func TestWrongCredentials(t *testing.T) {
	const wrong = "wrong-Pa55word-7x3q"
	reg := newTestRegistryWith(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true, Auth: testregistry.AuthBasic})
	user, pass := reg.proc.Username, reg.proc.Password
	loc := reg.newRepo()
	ctx := t.Context()

	good := openStore(t, loc, func(o *Options) { o.Username, o.Password = user, pass })
	if err := good.Create(ctx, []byte("config")); err != nil {
		t.Fatalf("Create with the right credentials: %v", err)
	}

	// Credentials given as options, and from a docker config.
	dockerDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + wrong))
	config := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, reg.host, auth)
	if err := os.WriteFile(filepath.Join(dockerDir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	sources := map[string]func(*Options){
		"options":       func(o *Options) { o.Username, o.Password = user, wrong },
		"docker config": func(o *Options) { o.DockerConfig = dockerDir },
		"none":          nil,
	}
	for name, mod := range sources {
		t.Run(name, func(t *testing.T) {
			st := openStore(t, loc, mod)
			data := []byte("a pack")
			errs := map[string]error{}
			_, errs["Open"] = st.Open(ctx)
			errs["Create"] = st.Create(ctx, []byte("config"))
			errs["Put"] = st.Put(ctx, storage.KindPack, sumHex(data), storage.BytesBody(data))
			errs["Put key"] = st.Put(ctx, storage.KindKey, sumHex(data), storage.BytesBody(data))
			errs["List"] = st.List(ctx, storage.KindPack, func(string, int64) error { return nil })
			_, errs["Stat"] = st.Stat(ctx, storage.KindKey, sumHex(data))
			for op, err := range errs {
				if err == nil {
					t.Errorf("%s with refused credentials succeeded", op)
					continue
				}
				msg := err.Error()
				if !strings.Contains(msg, reg.host) {
					t.Errorf("%s error %q does not name the registry %s", op, msg, reg.host)
				}
				if !strings.Contains(msg, "credentials") || !strings.Contains(msg, "coffer login") {
					t.Errorf("%s error %q does not say the credentials are the problem and how to give them", op, msg)
				}
				if strings.Contains(msg, wrong) || strings.Contains(msg, auth) {
					t.Errorf("%s error %q shows the password", op, msg)
				}
				if name == "docker config" && !strings.Contains(msg, dockerDir) {
					t.Errorf("%s error %q does not say the credentials came from %s", op, msg, dockerDir)
				}
			}
			if desc := fmt.Sprint(st.Describe(ctx)); strings.Contains(desc, wrong) {
				t.Errorf("Describe() = %s shows the password", desc)
			}
		})
	}
}
