package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// cookieName holds the access token after the first request.
const cookieName = "coffer_ui_token"

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func (s *Server) tokenOK(t string) bool {
	return t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(s.opts.Token)) == 1
}

// authorize lets a request through when it carries the token as a cookie.
// A request carrying it as ?token= gets the cookie (HttpOnly,
// SameSite=Strict) and is redirected to the same URL without the token,
// so that the token leaves the address bar and the history. Anything else
// gets 401.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.NoAuth {
		return true
	}
	q := r.URL.Query()
	if t := q.Get("token"); t != "" {
		if !s.tokenOK(t) {
			http.Error(w, "401 unauthorized: wrong token; use the URL coffer ui printed", http.StatusUnauthorized)
			return false
		}
		http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.opts.Token, Path: "/",
			HttpOnly: true, SameSite: http.SameSiteStrictMode})
		q.Del("token")
		u := *r.URL
		u.RawQuery = q.Encode()
		u.Scheme, u.Host = "", ""
		http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
		return false
	}
	if c, err := r.Cookie(cookieName); err == nil && s.tokenOK(c.Value) {
		return true
	}
	http.Error(w, "401 unauthorized: open the URL coffer ui printed (it carries the access token)", http.StatusUnauthorized)
	return false
}

// hostOK reports whether a request names the address it came to in its
// Host header: the connection's local IP, "localhost", "127.0.0.1" or
// "[::1]" when that is a loopback address, or a name Listen was given, at
// the port it came to. A page of another site whose name an attacker has
// pointed at this address (DNS rebinding) sends that name and is refused,
// which matters most with NoAuth, where nothing else stops it. A request
// that came through no TCP connection (a test calling ServeHTTP) names no
// address and is not checked.
func (s *Server) hostOK(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	if !ok {
		return true
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil { // no port: the default one
		host, port = strings.TrimSuffix(strings.TrimPrefix(r.Host, "["), "]"), "80"
	}
	if port != strconv.Itoa(local.Port) {
		return false
	}
	host = strings.ToLower(host)
	if ip := net.ParseIP(host); ip != nil {
		return ip.Equal(local.IP) || (local.IP.IsLoopback() && ip.IsLoopback())
	}
	if host == "localhost" {
		return local.IP.IsLoopback()
	}
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	return s.names[net.JoinHostPort(host, port)]
}
