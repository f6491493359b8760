package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"
)

// passphrase returns the repository passphrase from -passphrase-file,
// COFFER_PASSPHRASE or, on a terminal, a prompt (asked twice when
// confirm). The flag comes first: it is given for this one command, while
// the variable may be left over in the environment, and ignoring an
// explicit flag would open (or create) with a passphrase the user did not
// mean.
func (a *app) passphrase(confirm bool) ([]byte, error) {
	if a.g.passphraseFile != "" {
		return readPassphraseFile(a.g.passphraseFile)
	}
	if pw := a.env.Getenv("COFFER_PASSPHRASE"); pw != "" {
		return []byte(pw), nil
	}
	return a.prompt("passphrase", confirm)
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
func (a *app) prompt(what string, confirm bool) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, errors.New("no passphrase: set COFFER_PASSPHRASE, use -passphrase-file, or run on a terminal")
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
