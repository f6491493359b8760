package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/term"
)

// passphrase returns the repository passphrase from, in order,
// -passphrase-file, -passphrase-command, the named store's
// passphrase-file or passphrase-command, COFFER_PASSPHRASE,
// COFFER_PASSPHRASE_COMMAND or, on a terminal, a prompt (asked twice
// when confirm). Flags come first: they are given for this one command,
// while a variable may be left over in the environment, and ignoring an
// explicit flag would open (or create) with a passphrase the user did not
// mean; a named store's own source comes before the environment's for
// the same reason.
func (a *app) passphrase(ctx context.Context, confirm bool) ([]byte, error) {
	if pw, err := a.givenPassphrase(ctx); pw != nil || err != nil {
		return pw, err
	}
	return a.prompt("passphrase", confirm)
}

// givenPassphrase returns the passphrase passphrase would, short of
// asking for it: nil when none is given.
func (a *app) givenPassphrase(ctx context.Context) ([]byte, error) {
	switch {
	case a.g.passphraseFile != "":
		return readPassphraseFile(a.g.passphraseFile)
	case a.g.passphraseCmd != "":
		return a.runSecretCommand(ctx, "passphrase command", a.g.passphraseCmd)
	}
	if pw, err := a.storePassphrase(ctx, a.storeCfg); pw != nil || err != nil {
		return pw, err
	}
	if pw := a.env.Getenv("COFFER_PASSPHRASE"); pw != "" {
		return []byte(pw), nil
	}
	if cmd := a.env.Getenv("COFFER_PASSPHRASE_COMMAND"); cmd != "" {
		return a.runSecretCommand(ctx, "COFFER_PASSPHRASE_COMMAND", cmd)
	}
	return nil, nil
}

// storePassphrase returns the passphrase a named store's configuration
// gives, or nil when it gives none.
func (a *app) storePassphrase(ctx context.Context, sc *storeConfig) ([]byte, error) {
	switch {
	case sc == nil:
		return nil, nil
	case sc.PassphraseFile != "":
		return readPassphraseFile(sc.PassphraseFile)
	case sc.PassphraseCommand != "":
		return a.runSecretCommand(ctx, "passphrase-command", sc.PassphraseCommand)
	}
	return nil, nil
}

func readPassphraseFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase file: %w", err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("passphrase file %s is empty", path)
	}
	return b, nil
}

// prompt reads a passphrase from the controlling terminal.
// passphraseSources says where the passphrase prompt asks for can come
// from instead of a terminal.
func passphraseSources(what string) string {
	switch {
	case what == "new passphrase":
		return "set COFFER_NEW_PASSPHRASE, use -new-passphrase-file, or run on a terminal"
	case strings.HasPrefix(what, "passphrase of "):
		return "set COFFER_OTHER_PASSPHRASE, use -other-passphrase-file, or run on a terminal"
	}
	return "set COFFER_PASSPHRASE, use -passphrase-file or -passphrase-command, or run on a terminal"
}

func (a *app) prompt(what string, confirm bool) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, fmt.Errorf("no %s: %s", what, passphraseSources(what))
	}
	defer tty.Close()
	fmt.Fprintf(tty, "enter %s: ", what)
	pw, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if len(pw) == 0 {
		return nil, fmt.Errorf("empty %s", what)
	}
	if confirm {
		fmt.Fprintf(tty, "enter %s again: ", what)
		again, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", what, err)
		}
		if !bytes.Equal(pw, again) {
			return nil, fmt.Errorf("the two %ss differ", what)
		}
	}
	return pw, nil
}

// keyCacheFromEnv takes -key-cache from COFFER_KEY_CACHE when the flag
// is not given, and checks it.
func (a *app) keyCacheFromEnv() error {
	if !a.g.keyCache.set {
		if v := a.env.Getenv("COFFER_KEY_CACHE"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%w: COFFER_KEY_CACHE=%q: give a duration, such as 15m or 8h", errUsage, v)
			}
			a.g.keyCache.d = d
		}
	}
	if a.g.keyCache.d < 0 {
		return fmt.Errorf("%w: -key-cache %s: give a positive duration, such as 15m, or 0 for no key cache", errUsage, a.g.keyCache.d)
	}
	return nil
}

// keyCacheFlag is -key-cache: a duration, and whether it was given, so
// that -key-cache 0 turns off a COFFER_KEY_CACHE of the environment.
type keyCacheFlag struct {
	d   time.Duration
	set bool
}

func (f *keyCacheFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return f.d.String()
}

func (f *keyCacheFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("give a duration, such as 15m or 8h")
	}
	f.d, f.set = d, true
	return nil
}

// keyCacheDir is where cached keys live: under XDG_RUNTIME_DIR, which
// the system makes for each user in memory and removes at logout, or
// else in a directory of this user's in /dev/shm, also in memory.
func (a *app) keyCacheDir() (string, error) {
	if d := a.env.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "coffer", "keys"), nil
	}
	if runtime.GOOS == "linux" {
		if info, err := os.Stat("/dev/shm"); err == nil && info.IsDir() {
			return filepath.Join("/dev/shm", fmt.Sprintf("coffer-keys-%d", os.Getuid())), nil
		}
	}
	return "", errors.New("-key-cache needs XDG_RUNTIME_DIR, a directory of this user's in memory, and it is not set")
}
