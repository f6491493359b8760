// Package tools pins the external programs coffer's tests run against:
// the CNCF Distribution registry and the oras client. It is a module of
// its own so that their dependencies never enter coffer's.
//
//	go tool -modfile=tools/go.mod registry serve config.yml
//	go tool -modfile=tools/go.mod oras repo tags localhost:5000/repo
package tools
