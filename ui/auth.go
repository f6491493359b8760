package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
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
