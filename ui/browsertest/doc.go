// Package browsertest drives a real browser (Debian's Chromium, through
// chromedp) through coffer's web UI. It is a module of its own so that
// chromedp, which only this test needs, is no requirement of coffer's:
// run it with "cd ui/browsertest && go test ./..." (.ci/run does).
package browsertest
