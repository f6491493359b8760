package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/storage/oci"
)

// config is coffer's configuration file: named stores (`coffer store
// add`), used as `coffer at @NAME`. It holds no passphrase: a store names
// a command or a file that gives it.
type config struct {
	Stores map[string]*storeConfig `json:"stores"`
}

// storeConfig is one named store: its location and the options commands
// on it take unless the command line says otherwise.
type storeConfig struct {
	Location          string `json:"location"`
	PassphraseCommand string `json:"passphrase_command,omitempty"`
	PassphraseFile    string `json:"passphrase_file,omitempty"`
	Username          string `json:"username,omitempty"`
	PasswordCommand   string `json:"password_command,omitempty"`
	CAFile            string `json:"ca_file,omitempty"`
	InsecureHTTP      bool   `json:"insecure_http,omitempty"`
	RetryFor          string `json:"retry_for,omitempty"`
	ReferenceWithin   string `json:"reference_within,omitempty"`
	UploadChunk       string `json:"upload_chunk,omitempty"`
	PackSize          string `json:"pack_size,omitempty"`
}

// storeOptionKeys are the options `store add NAME LOCATION key=value`
// takes, with what each sets.
var storeOptionKeys = []struct{ key, help string }{
	{"passphrase-command", "a command whose output is the repository passphrase (run with sh -c)"},
	{"passphrase-file", "a file holding the repository passphrase"},
	{"username", "the registry user name"},
	{"password-command", "a command whose output is the registry password or token"},
	{"ca-file", "as -ca-file"},
	{"insecure-http", "as -insecure-http (true or false)"},
	{"retry-for", "as -retry-for (a duration, like 30m)"},
	{"reference-within", "as -reference-within (a duration)"},
	{"upload-chunk", "as -upload-chunk (a size, like 512KiB)"},
	{"pack-size", "the pack size of create and backup (a size, like 16MiB)"},
}

// set assigns the option key, checking its value.
func (sc *storeConfig) set(key, value string) error {
	switch key {
	case "passphrase-command":
		sc.PassphraseCommand = value
	case "passphrase-file":
		abs, err := filepath.Abs(value)
		if err != nil {
			return err
		}
		sc.PassphraseFile = abs
	case "username":
		sc.Username = value
	case "password-command":
		sc.PasswordCommand = value
	case "ca-file":
		abs, err := filepath.Abs(value)
		if err != nil {
			return err
		}
		sc.CAFile = abs
	case "insecure-http":
		switch value {
		case "true", "false":
			sc.InsecureHTTP = value == "true"
		default:
			return fmt.Errorf("insecure-http=%s: give true or false", value)
		}
	case "retry-for", "reference-within":
		if d, err := time.ParseDuration(value); err != nil || d <= 0 {
			return fmt.Errorf("%s=%s: give a positive duration, such as 30m", key, value)
		}
		if key == "retry-for" {
			sc.RetryFor = value
		} else {
			sc.ReferenceWithin = value
		}
	case "upload-chunk", "pack-size":
		bare := int64(1)
		if key == "pack-size" {
			bare = 1 << 20
		}
		n, err := parseSize(value, bare)
		if err != nil {
			return fmt.Errorf("%s=%s: %v", key, value, err)
		}
		if key == "pack-size" && !validPackSize(n) {
			return fmt.Errorf("pack-size=%s: give a size from 512KiB to 1GiB", value)
		}
		if key == "upload-chunk" {
			sc.UploadChunk = value
		} else {
			sc.PackSize = value
		}
	case "passphrase", "password":
		return fmt.Errorf("%s= would be written to the configuration file in plain text: give %s-command= (or passphrase-file=, or coffer login for registry credentials)", key, key)
	default:
		keys := make([]string, len(storeOptionKeys))
		for i, k := range storeOptionKeys {
			keys[i] = k.key
		}
		return fmt.Errorf("unknown store option %q: use %s", key, strings.Join(keys, ", "))
	}
	return nil
}

// options lists the options set, secrets' commands included (they are
// commands, not secrets), for `store list`.
func (sc *storeConfig) options() []string {
	var out []string
	add := func(k, v string) {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	add("passphrase-command", sc.PassphraseCommand)
	add("passphrase-file", sc.PassphraseFile)
	add("username", sc.Username)
	add("password-command", sc.PasswordCommand)
	add("ca-file", sc.CAFile)
	if sc.InsecureHTTP {
		add("insecure-http", "true")
	}
	add("retry-for", sc.RetryFor)
	add("reference-within", sc.ReferenceWithin)
	add("upload-chunk", sc.UploadChunk)
	add("pack-size", sc.PackSize)
	return out
}

// configPath is the configuration file: COFFER_CONFIG, or config.json in
// coffer's directory under the user configuration directory
// (~/.config/coffer on Linux).
func (a *app) configPath() (string, error) {
	if p := a.env.Getenv("COFFER_CONFIG"); p != "" {
		return p, nil
	}
	dir := a.env.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		var err error
		if dir, err = os.UserConfigDir(); err != nil {
			return "", fmt.Errorf("no configuration directory (%v): set COFFER_CONFIG to a file", err)
		}
	}
	return filepath.Join(dir, "coffer", "config.json"), nil
}

// loadConfig reads the configuration file; a missing one is empty.
func (a *app) loadConfig() (*config, string, error) {
	path, err := a.configPath()
	if err != nil {
		return nil, "", err
	}
	cfg := &config{Stores: map[string]*storeConfig{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("reading the configuration: %w", err)
	}
	if err := json.Unmarshal(b, cfg); err != nil {
		return nil, path, fmt.Errorf("configuration file %s: %v: fix or remove it", path, err)
	}
	if cfg.Stores == nil {
		cfg.Stores = map[string]*storeConfig{}
	}
	return cfg, path, nil
}

// saveConfig writes the configuration file, readable by its owner only
// (it names credentials' sources), replacing the old one at once.
func saveConfig(path string, cfg *config) error {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing the configuration: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".config-*")
	if err != nil {
		return fmt.Errorf("writing the configuration: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o600)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing the configuration %s: %w", path, err)
	}
	return nil
}

// validStoreName reports whether name can name a store: letters, digits,
// '-', '_' and '.', starting with a letter or digit.
func validStoreName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && strings.ContainsRune("-_.", c)
		if !ok {
			return false
		}
	}
	return true
}

// resolveStore turns `@NAME` into the named store's location and
// configuration; any other location is returned as it is, with none.
func (a *app) resolveStore(location string) (string, *storeConfig, error) {
	name, named := strings.CutPrefix(location, "@")
	if !named {
		return location, nil, nil
	}
	cfg, path, err := a.loadConfig()
	if err != nil {
		return "", nil, err
	}
	sc, ok := cfg.Stores[name]
	if !ok {
		known := make([]string, 0, len(cfg.Stores))
		for n := range cfg.Stores {
			known = append(known, "@"+n)
		}
		slices.Sort(known)
		hint := "add it with `coffer store add " + name + " LOCATION`"
		if len(known) > 0 {
			hint = "known: " + strings.Join(known, ", ") + "; or " + hint
		}
		return "", nil, fmt.Errorf("%w: no store named %q in %s: %s", errUsage, name, path, hint)
	}
	return sc.Location, sc, nil
}

// applyStoreConfig makes a named store's options the defaults of the
// global flags not given on the command line.
func (a *app) applyStoreConfig(sc *storeConfig, given map[string]bool) error {
	if sc == nil {
		return nil
	}
	if !given["ca-file"] && sc.CAFile != "" {
		a.g.caFile = sc.CAFile
	}
	if !given["insecure-http"] && sc.InsecureHTTP {
		a.g.insecureHTTP = true
	}
	for _, d := range []struct {
		flag, value string
		dst         *time.Duration
	}{{"retry-for", sc.RetryFor, &a.g.retryFor}, {"reference-within", sc.ReferenceWithin, &a.g.referenceWith}} {
		if given[d.flag] || d.value == "" {
			continue
		}
		v, err := time.ParseDuration(d.value)
		if err != nil {
			return fmt.Errorf("%w: store option %s=%s: %v", errUsage, d.flag, d.value, err)
		}
		*d.dst = v
	}
	if !given["upload-chunk"] && sc.UploadChunk != "" {
		if err := a.g.uploadChunk.Set(sc.UploadChunk); err != nil {
			return fmt.Errorf("%w: store option upload-chunk=%s: %v", errUsage, sc.UploadChunk, err)
		}
	}
	return nil
}

// storePackSize is the named store's pack-size, or 0.
func (a *app) storePackSize() (int64, error) {
	if a.storeCfg == nil || a.storeCfg.PackSize == "" {
		return 0, nil
	}
	n, err := parseSize(a.storeCfg.PackSize, 1<<20)
	if err != nil {
		return 0, fmt.Errorf("%w: store option pack-size=%s: %v", errUsage, a.storeCfg.PackSize, err)
	}
	return n, nil
}

// registryCredentials applies a named store's username and
// password-command to o, unless COFFER_REGISTRY_* are set.
func (a *app) registryCredentials(ctx context.Context, o *oci.Options, sc *storeConfig) error {
	if sc == nil || sc.Username == "" || o.Username != "" || o.Password != "" {
		return nil
	}
	o.Username = sc.Username
	if sc.PasswordCommand != "" {
		pw, err := a.runSecretCommand(ctx, "password-command", sc.PasswordCommand)
		if err != nil {
			return err
		}
		o.Password = string(pw)
	}
	return nil
}

// runSecretCommand runs a command that prints a secret (a passphrase,
// a password) and returns its output without the final line break. The
// secret never appears in an error: only the command and its stderr.
func (a *app) runSecretCommand(ctx context.Context, what, command string) ([]byte, error) {
	var cmd *exec.Cmd
	if runtime.GOOS == "windows" {
		cmd = exec.CommandContext(ctx, "cmd", "/C", command)
	} else {
		cmd = exec.CommandContext(ctx, "sh", "-c", command)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && ctx.Err() != nil {
		// Killed because coffer was interrupted, not failed of its own.
		return nil, ctx.Err()
	}
	if err != nil {
		msg := strings.TrimSpace(strings.SplitN(stderr.String(), "\n", 2)[0])
		if msg != "" {
			msg = ": " + msg
		}
		return nil, fmt.Errorf("%s %q failed (%v)%s", what, command, err, msg)
	}
	out = bytes.TrimRight(out, "\r\n")
	if len(out) == 0 {
		return nil, fmt.Errorf("%s %q printed nothing", what, command)
	}
	return out, nil
}
