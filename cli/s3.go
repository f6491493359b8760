package cli

import "github.com/cofferhq/coffer/storage/s3"

// s3Options gathers what the S3 store needs from flags and the
// environment: the registry flags that mean the same there (-ca-file,
// -insecure-http, -retry-for), and the AWS variables through a.env,
// which the credential chain reads (docs/s3.md).
func (a *app) s3Options() s3.Options {
	return s3.Options{
		InsecureHTTP:   a.g.insecureHTTP,
		CAFile:         a.g.caFile,
		RetryFor:       a.g.retryFor,
		Getenv:         a.env.Getenv,
		Logf:           a.out.notice,
		ObjectLockDays: a.objectLockDays,
	}
}
