package cli

import (
	"context"
	"flag"
	"time"

	"github.com/cofferhq/coffer/repo"
)

type keyOptions struct{ newPassphraseFile string }

var keyCommand = &command{
	name:     "key",
	usage:    "list | add | passwd | rm <id>",
	summary:  "manage the passphrases that open the repository",
	needRepo: true,
	// Changing who may open the repository takes its passphrase, not
	// a cached key.
	askPassphrase: true,
	flags: func(fs *flag.FlagSet) any {
		o := &keyOptions{}
		fs.StringVar(&o.newPassphraseFile, "new-passphrase-file", "", "read the new passphrase from this file (env COFFER_NEW_PASSPHRASE)")
		return o
	},
	check: func(_ *app, _ any, args []string) error {
		if len(args) == 0 {
			return usageError("key needs a subcommand: list, add, passwd or rm <id>")
		}
		switch sub := args[0]; {
		case (sub == "list" || sub == "add" || sub == "passwd") && len(args) == 1, sub == "rm" && len(args) == 2:
			return nil
		}
		return usageError("key: use `key list`, `key add`, `key passwd` or `key rm <id>`")
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		o := opts.(*keyOptions)
		switch sub := args[0]; sub {
		case "list":
			keys, err := a.repo.ListKeys(ctx)
			if err != nil {
				return err
			}
			for _, k := range keys {
				mark := " "
				if k.Current {
					mark = "*"
				}
				a.out.textf("%s %s  %s  %s@%s\n", mark, k.Name[:8], k.Created.Format(time.RFC3339), k.User, k.Host)
				a.out.result(newKeyEvent(k))
			}
			return nil
		case "add", "passwd":
			pw, err := a.newPassphrase(o)
			if err != nil {
				return err
			}
			var name string
			if sub == "add" {
				name, err = a.repo.AddKey(ctx, pw, repo.DefaultKDF)
			} else {
				name, err = a.repo.ChangePassphrase(ctx, pw, repo.DefaultKDF)
			}
			if err != nil {
				return err
			}
			a.out.textf("key %s %s\n", name[:8], map[string]string{"add": "added", "passwd": "replaces the key in use"}[sub])
			a.out.result(keyEvent{Type: "key_added", ID: name, Current: sub == "passwd"})
			return nil
		}
		// rm <id>, the one other form check accepts.
		name, err := a.repo.ResolveKey(ctx, args[1])
		if err != nil {
			return err
		}
		if err := a.repo.RemoveKey(ctx, name); err != nil {
			return err
		}
		a.out.textf("key %s removed\n", name[:8])
		a.out.result(keyEvent{Type: "key_removed", ID: name})
		return nil
	},
}

// newPassphrase reads the passphrase for a new key: like passphrase, an
// explicit -new-passphrase-file wins over COFFER_NEW_PASSPHRASE.
func (a *app) newPassphrase(o *keyOptions) ([]byte, error) {
	if o.newPassphraseFile != "" {
		return readPassphraseFile(o.newPassphraseFile)
	}
	if pw := a.env.Getenv("COFFER_NEW_PASSPHRASE"); pw != "" {
		return []byte(pw), nil
	}
	return a.prompt("new passphrase", true)
}
