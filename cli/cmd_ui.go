package cli

import (
	"context"
	"flag"

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
	check: noArgs("ui"),
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
