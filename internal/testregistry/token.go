package testregistry

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TokenServer is a small in-process implementation of the registry token
// protocol (the "Bearer realm=..." flow of docker login): clients that
// the registry turns away with 401 ask it for a token, authenticating
// with basic credentials, and it answers with a JWT that the registry
// accepts. It holds one user, who may do anything to any repository.
//
// The tokens are ES256 JWS in compact form. Their header carries the
// signing key's certificate as x5c, signed by the CA that the registry's
// token auth trusts (rootcertbundle): both Distribution v3 and 2.8 accept
// that; v3 would also take a kid of the key's JWK thumbprint, 2.8 a
// libtrust key ID, so x5c is the one form they share.
type TokenServer struct {
	// URL is the token endpoint, the realm of the registry's challenge.
	URL string
	// Service is the registry's name, the audience of the tokens.
	Service string
	// Issuer is the tokens' issuer, which the registry checks.
	Issuer string
	// RootCertFile is the PEM file of the CA that signed the token
	// signing certificate, the registry's rootcertbundle.
	RootCertFile string

	username, password string
	key                *ecdsa.PrivateKey
	x5c                string
	srv                *httptest.Server

	mu       sync.Mutex
	ttl      time.Duration
	requests int
	issued   int
}

// Token server defaults.
const (
	tokenService = "coffer-test-registry"
	tokenIssuer  = "coffer-test-token-server"
	tokenTTL     = 5 * time.Minute
)

// startTokenServer starts a token server on 127.0.0.1, over TLS with a
// certificate from ca when tlsOn, and stops it at the end of the test.
// rootCertFile is ca's certificate as a file for the registry.
func startTokenServer(t testing.TB, ca *testCA, rootCertFile, dir string, tlsOn bool, username, password string) *TokenServer {
	t.Helper()
	key, cert, err := ca.issue("token-signer", false)
	if err != nil {
		t.Fatalf("testutil: token server: %v", err)
	}
	ts := &TokenServer{
		Service:      tokenService,
		Issuer:       tokenIssuer,
		RootCertFile: rootCertFile,
		username:     username,
		password:     password,
		key:          key,
		x5c:          base64.StdEncoding.EncodeToString(cert.Raw),
		ttl:          tokenTTL,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", ts.serveToken)
	ts.srv = httptest.NewUnstartedServer(mux)
	if tlsOn {
		_, _, pair, err := ca.serverTLS(dir, "token-server")
		if err != nil {
			t.Fatalf("testutil: token server: %v", err)
		}
		ts.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
		ts.srv.StartTLS()
	} else {
		ts.srv.Start()
	}
	t.Cleanup(ts.srv.Close)
	ts.URL = ts.srv.URL + "/token"
	return ts
}

// Requests returns how many requests the token endpoint has had.
func (ts *TokenServer) Requests() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.requests
}

// Issued returns how many tokens the token endpoint has issued.
func (ts *TokenServer) Issued() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.issued
}

// SetTTL sets the lifetime of the tokens issued from now on (five
// minutes by default). The registry allows a minute of clock skew past
// a token's expiry.
func (ts *TokenServer) SetTTL(d time.Duration) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.ttl = d
}

// Mint returns a token granting the given scopes
// ("repository:NAME:pull,push"), as the token endpoint would issue to
// the user, without any request.
func (ts *TokenServer) Mint(scopes ...string) (string, error) {
	ts.mu.Lock()
	ttl := ts.ttl
	ts.mu.Unlock()
	tok, _, err := ts.sign(ts.username, scopes, ttl)
	return tok, err
}

// tokenAccess is one entry of a token's "access" claim.
type tokenAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// parseScope parses "TYPE[(CLASS)]:NAME:ACTION[,ACTION...]"; the name
// may itself hold colons (a host:port prefix).
func parseScope(s string) (tokenAccess, bool) {
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndex(rest, ":")
	if !ok || typ == "" || i <= 0 || i == len(rest)-1 {
		return tokenAccess{}, false
	}
	if j := strings.IndexByte(typ, '('); j > 0 {
		typ = typ[:j]
	}
	return tokenAccess{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")}, true
}

// sign makes a token for subject granting scopes, valid for ttl.
func (ts *TokenServer) sign(subject string, scopes []string, ttl time.Duration) (string, time.Time, error) {
	access := []tokenAccess{}
	for _, s := range scopes {
		for _, f := range strings.Fields(s) {
			a, ok := parseScope(f)
			if !ok {
				return "", time.Time{}, fmt.Errorf("malformed scope %q", f)
			}
			access = append(access, a)
		}
	}
	now := time.Now()
	jti := make([]byte, 12)
	if _, err := rand.Read(jti); err != nil {
		return "", time.Time{}, err
	}
	header, err := json.Marshal(map[string]any{
		"typ": "JWT",
		"alg": "ES256",
		"x5c": []string{ts.x5c},
	})
	if err != nil {
		return "", time.Time{}, err
	}
	claims, err := json.Marshal(map[string]any{
		"iss":    ts.Issuer,
		"sub":    subject,
		"aud":    ts.Service,
		"exp":    now.Add(ttl).Unix(),
		"nbf":    now.Add(-time.Second).Unix(),
		"iat":    now.Unix(),
		"jti":    hex.EncodeToString(jti),
		"access": access,
	})
	if err != nil {
		return "", time.Time{}, err
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, digest[:])
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing a token: %w", err)
	}
	sig := make([]byte, 64) // JWS ES256: R and S, 32 big-endian bytes each
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + enc.EncodeToString(sig), now, nil
}

// serveToken answers GET (docker's flow: basic credentials, ?service=
// and repeated ?scope=) and POST (OAuth2's grant_type=password form, as
// some clients use).
func (ts *TokenServer) serveToken(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	ts.requests++
	ttl := ts.ttl
	ts.mu.Unlock()

	var user, pass, service string
	var scopes []string
	var haveCreds, oauth bool
	switch r.Method {
	case http.MethodGet:
		user, pass, haveCreds = r.BasicAuth()
		service = r.URL.Query().Get("service")
		scopes = r.URL.Query()["scope"]
	case http.MethodPost:
		oauth = true
		if err := r.ParseForm(); err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		if gt := r.PostForm.Get("grant_type"); gt != "password" {
			tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only grant_type=password is supported, not "+gt)
			return
		}
		user, pass = r.PostForm.Get("username"), r.PostForm.Get("password")
		haveCreds = user != ""
		service = r.PostForm.Get("service")
		scopes = strings.Fields(r.PostForm.Get("scope"))
	default:
		w.Header().Set("Allow", "GET, POST")
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "method "+r.Method)
		return
	}
	if !haveCreds ||
		subtle.ConstantTimeCompare([]byte(user), []byte(ts.username)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(ts.password)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="coffer-test-token-server"`)
		tokenError(w, http.StatusUnauthorized, "unauthorized", "wrong or missing credentials")
		return
	}
	if service != "" && service != ts.Service {
		tokenError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("unknown service %q (this server serves %q)", service, ts.Service))
		return
	}
	tok, issued, err := ts.sign(user, scopes, ttl)
	if err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_scope", err.Error())
		return
	}
	ts.mu.Lock()
	ts.issued++
	ts.mu.Unlock()
	resp := map[string]any{
		"access_token": tok,
		"expires_in":   int(ttl / time.Second),
		"issued_at":    issued.UTC().Format(time.RFC3339),
	}
	if oauth {
		resp["scope"] = strings.Join(scopes, " ")
		resp["token_type"] = "Bearer"
	} else {
		resp["token"] = tok
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

func tokenError(w http.ResponseWriter, code int, errCode, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": errCode, "error_description": desc, "details": desc})
}
