package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ListenOptions say where and how Server.ListenAndServe serves.
type ListenOptions struct {
	Addr  string    // host:port; "" means 127.0.0.1 on a free port
	Spawn bool      // open the URL with xdg-open when it is installed
	Warn  io.Writer // receives warnings (a non-loopback address, -no-auth); nil discards them
	// Ready is called with the URL to open (carrying the token) once the
	// server listens.
	Ready func(url string)
}

// Listen opens the listener and returns it with the URL to print and the
// warnings the user must see.
func (s *Server) Listen(addr string) (net.Listener, string, []string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", nil, fmt.Errorf("ui: listening on %s: %w", addr, err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	// A host name (not an address) is what a browser sends as the Host of
	// a URL with that name, so it names this server too (see hostOK).
	if name, _, err := net.SplitHostPort(addr); err == nil && name != "" && net.ParseIP(name) == nil {
		s.namesMu.Lock()
		if s.names == nil {
			s.names = map[string]bool{}
		}
		s.names[net.JoinHostPort(strings.ToLower(name), strconv.Itoa(tcp.Port))] = true
		s.namesMu.Unlock()
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	u := "http://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port)) + "/"
	if tok := s.Token(); tok != "" {
		u += "?token=" + tok
	}
	var warns []string
	if !tcp.IP.IsLoopback() {
		w := fmt.Sprintf("warning: the UI listens on %s, which other machines may reach; the traffic is plain HTTP", ln.Addr())
		if s.Token() != "" {
			w += " (the access token is still required)"
		}
		warns = append(warns, w)
	}
	if s.opts.NoAuth {
		warns = append(warns, fmt.Sprintf("warning: no access token: anyone who can reach %s can read every backup", ln.Addr()))
	}
	return ln, u, warns, nil
}

// ListenAndServe serves until ctx is done, then shuts down gracefully.
func (s *Server) ListenAndServe(ctx context.Context, o ListenOptions) error {
	ln, u, warns, err := s.Listen(o.Addr)
	if err != nil {
		return err
	}
	for _, w := range warns {
		if o.Warn != nil {
			fmt.Fprintln(o.Warn, "coffer: "+w)
		}
	}
	if o.Ready != nil {
		o.Ready(u)
	}
	if o.Spawn {
		if xdg, err := exec.LookPath("xdg-open"); err == nil {
			cmd := exec.Command(xdg, u)
			if cmd.Start() == nil {
				go cmd.Wait()
			}
		}
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}
