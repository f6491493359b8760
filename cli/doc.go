// Package cli implements coffer's command line: it parses arguments,
// prints results as text or JSON, shows progress, and maps errors to the
// documented exit codes. The work itself is done by snapshot and repo.
package cli
