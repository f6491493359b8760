package cli

import (
	"context"
	"flag"
	"net"

	"github.com/cofferhq/coffer/ui"
)

type uiOptions struct {
	addr    string
	noSpawn bool
	noAuth  bool
}

var uiCommand = &command{
	name:     "ui",
	summary:  "browse the repository in a read-only local web interface",
	needRepo: true,
	flags: func(fs *flag.FlagSet) any {
		o := &uiOptions{}
		fs.StringVar(&o.addr, "addr", "127.0.0.1:0", "address to listen on (default: loopback, a free port)")
		fs.BoolVar(&o.noSpawn, "no-spawn", false, "do not open a browser, only print the URL")
		fs.BoolVar(&o.noAuth, "no-auth", false, "serve without the access token (anyone who can reach the address can read the backups)")
		return o
	},
	check: checkUI,
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		o := opts.(*uiOptions)
		srv, err := ui.New(a.repo, ui.Options{NoAuth: o.noAuth})
		if err != nil {
			return err
		}
		// Stopping with Ctrl-C is how the UI ends: not an error.
		return srv.ListenAndServe(ctx, ui.ListenOptions{
			Addr: o.addr, Spawn: !o.noSpawn, Warn: a.env.Stderr,
			Ready: func(url string) {
				a.out.textf("coffer ui: serving %s at %s (Ctrl-C to stop)\n", a.g.store, url)
				a.out.result(uiEvent{"ui", url})
			},
		})
	},
}

// checkUI rejects an -addr that is no host:port before the repository is
// opened (and the passphrase asked for).
func checkUI(a *app, opts any, args []string) error {
	if err := noArgs("ui")(a, opts, args); err != nil {
		return err
	}
	addr := opts.(*uiOptions).addr
	if addr == "" {
		return nil // loopback, a free port
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil && port != "" {
		// A number or a service name, as net.Listen takes.
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return usageError("ui -addr %q is not a host:port; give one, as 127.0.0.1:8080 (port 0 takes a free one)", addr)
	}
	return nil
}
