package cli

import (
	"bufio"
	"context"
	"flag"
	"strings"

	"github.com/cofferhq/coffer/storage/oci"
)

type loginOptions struct {
	username      string
	passwordStdin bool
}

var loginCommand = &command{
	name:    "login",
	noStore: true,
	usage:   "-username USER -password-stdin <registry>",
	summary: "check and store registry credentials in the docker config, as docker login does",
	flags: func(fs *flag.FlagSet) any {
		o := &loginOptions{}
		fs.StringVar(&o.username, "username", "", "registry user name")
		fs.BoolVar(&o.passwordStdin, "password-stdin", false, "read the password (or token) from standard input")
		return o
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		o := opts.(*loginOptions)
		if len(args) != 1 {
			return usageError("login takes one registry host, e.g. coffer login ghcr.io -username me -password-stdin")
		}
		if o.username == "" || !o.passwordStdin {
			return usageError("login needs -username and -password-stdin (a password on the command line would leak into shell history)")
		}
		line, err := bufio.NewReader(a.env.Stdin).ReadString('\n')
		password := strings.TrimRight(line, "\r\n")
		if password == "" {
			return usageError("login: no password on standard input (%v)", err)
		}
		path, err := oci.Login(ctx, args[0], o.username, password, a.ociOptions())
		if err != nil {
			return err
		}
		a.out.textf("login to %s succeeded; credentials stored through %s\n", args[0], path)
		a.out.result(loginEvent{Type: "login", Registry: args[0], Username: o.username})
		return nil
	},
}

var logoutCommand = &command{
	name:    "logout",
	noStore: true,
	usage:   "<registry>",
	summary: "remove stored registry credentials",
	run: func(ctx context.Context, a *app, _ any, args []string) error {
		if len(args) != 1 {
			return usageError("logout takes one registry host")
		}
		removed, path, err := oci.Logout(ctx, args[0], a.ociOptions())
		if err != nil {
			return err
		}
		if !removed {
			a.out.textf("no credentials for %s were stored (looked in %s and its credential helpers): nothing to remove\n", args[0], path)
		} else {
			a.out.textf("removed credentials for %s\n", args[0])
		}
		a.out.result(loginEvent{Type: "logout", Registry: args[0], Removed: &removed})
		return nil
	},
}
