// Package testregistry starts the real servers coffer's tests run
// against, each on 127.0.0.1 with its data in the test's temporary
// directory and stopped when the test ends: CNCF Distribution v3 (built
// from tools/go.mod into $COFFER_TOOLBIN) and Debian's registry 2.8, plain
// or with TLS from a test CA, htpasswd or token auth with a token server
// of its own (registry.go, token.go); nginx with a body limit in front of
// one (nginx.go); a fault-injecting proxy that answers 429, 5xx, resets,
// cuts bodies, lies about ranges and can refuse connections for a while
// (faultproxy.go); a front that deletes uploads no tag reaches after a
// grace time, as online garbage collection does (gcfront.go); and oras,
// to look at what coffer wrote as another client would (oras.go).
//
// A server that is not installed skips the test loudly, or fails it
// under COFFER_TEST_DISALLOW_SKIP=1 (as .ci/run sets); under go test
// -short every test that starts one is skipped.
package testregistry
