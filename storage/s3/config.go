package s3

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/cofferhq/coffer/storage"
)

// Options configure how the S3 endpoint is reached. Zero values are the
// defaults; they are the OCI store's options where both have one (the
// CLI fills both from the same flags).
type Options struct {
	// InsecureHTTP allows plain HTTP to endpoints that are not loopback
	// addresses (-insecure-http). Loopback endpoints fall back to plain
	// HTTP on their own when they do not speak TLS at all.
	InsecureHTTP bool
	// CAFile is a PEM bundle of extra certificate authorities to trust,
	// added to the system pool (-ca-file).
	CAFile string
	// RetryFor is how long an operation that keeps failing in a way that
	// passes with time (the endpoint down or restarting, 429, 5xx,
	// SlowDown, resets, timeouts) is retried before it fails
	// (DefaultRetryFor when zero).
	RetryFor time.Duration
	// MultipartAbove is the size above which an object is uploaded in
	// parts (DefaultMultipartAbove when zero); smaller ones go in one
	// PUT, read from where they are.
	MultipartAbove int64
	// PartSize is the size of the parts of a multipart upload
	// (DefaultPartSize when zero; at least MinPartSize, S3's minimum).
	// Each upload holds one part in memory while it sends it.
	PartSize int64
	// ObjectLockDays, when positive, makes Create write the repository
	// with a COMPLIANCE retention of this many days on every object but
	// locks and plans (lock.go); the bucket must have Object Lock
	// enabled. Only Create reads it: Open reads the setting from the
	// store, so that every client applies it.
	ObjectLockDays int
	// Getenv reads the environment: AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE,
	// AWS_SHARED_CREDENTIALS_FILE, AWS_REGION and AWS_DEFAULT_REGION.
	// Nil means os.Getenv. (Web identity and instance roles are read
	// by minio-go from the process environment.)
	Getenv func(string) string
	// Logf receives notices meant for the user, such as waiting for an
	// endpoint to come back; nil discards them.
	Logf func(format string, args ...any)
	// Transport replaces the base HTTP transport (tests use it to inject
	// faults). TLS settings are applied only to the default transport.
	Transport http.RoundTripper
}

const (
	// DefaultMultipartAbove is Options.MultipartAbove's default: a
	// single PUT, one request, for every pack of coffer's default size
	// (32 MiB) and of twice it; S3 takes single PUTs up to 5 GiB.
	DefaultMultipartAbove = 64 << 20
	// DefaultPartSize is Options.PartSize's default: an upload in parts
	// holds one part in memory (to send its Content-MD5 before it), so
	// with four uploads at once that is 64 MiB.
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's smallest part but the last.
	MinPartSize = 5 << 20
)

// awsEndpoint is the endpoint of s3:bucket/prefix locations. minio-go
// turns it into the bucket's regional endpoint.
const awsEndpoint = "s3.amazonaws.com"

// lookupStyles are the values of ?lookup=: how a bucket is addressed.
var lookupStyles = map[string]string{
	"auto": "path style, except virtual-host style where the endpoint needs it (AWS, Aliyun)",
	"path": "https://host/bucket/key",
	"dns":  "https://bucket.host/key (virtual-host style)",
}

// location is a parsed S3 location.
type location struct {
	endpoint string // host[:port]; awsEndpoint for s3:bucket/prefix
	aws      bool   // written as s3:bucket/prefix
	bucket   string
	prefix   string // without leading or trailing "/"; may be empty
	region   string // ?region=, else from the environment or detected
	lookup   string // ?lookup=, "auto" when not given
	insecure bool   // ?insecure-http=true
}

// String returns the location as the user would write it, without the
// query options.
func (l location) String() string {
	path := l.bucket
	if l.prefix != "" {
		path += "/" + l.prefix
	}
	if l.aws {
		return "s3:" + path
	}
	return "s3://" + l.endpoint + "/" + path
}

// key returns the object key of rel below the prefix.
func (l location) key(rel string) string {
	if l.prefix == "" {
		return rel
	}
	return l.prefix + "/" + rel
}

// parseLocation parses s3://host[:port]/bucket[/prefix][?options] and
// s3:bucket[/prefix][?options]. Every error is a storage.BadLocation,
// found before any request is made.
func parseLocation(s string) (location, error) {
	l, err := parseLocationText(s)
	if err != nil {
		return location{}, storage.BadLocation(err)
	}
	return l, nil
}

const locationForms = "write s3://host[:port]/bucket/prefix for an endpoint, or s3:bucket/prefix for AWS"

func parseLocationText(s string) (location, error) {
	if len(s) < 3 || !strings.EqualFold(s[:3], "s3:") {
		return location{}, fmt.Errorf("S3 location %q must start with s3:// (an endpoint) or s3: (AWS)", s)
	}
	if strings.Contains(s, "#") {
		return location{}, fmt.Errorf("S3 location %q has a \"#\" fragment, which names nothing in a bucket: remove it (%s)", s, locationForms)
	}
	rest := s[3:]
	var l location
	var query string
	rest, query, _ = strings.Cut(rest, "?")
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		u, err := url.Parse("s3://" + after)
		if err != nil {
			return location{}, fmt.Errorf("S3 location %q: %w (%s)", s, err, locationForms)
		}
		if u.User != nil {
			return location{}, fmt.Errorf("S3 location must not carry credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
		}
		if u.Host == "" {
			return location{}, fmt.Errorf("S3 location %q has no host: %s", s, locationForms)
		}
		if err := storage.CheckPort(u.Host); err != nil {
			return location{}, fmt.Errorf("S3 location %q: %w", s, err)
		}
		l.endpoint = u.Host
		rest = u.Path
		if strings.Trim(rest, "/") == "" {
			return location{}, fmt.Errorf("S3 location %q names a host but no bucket: %s", s, locationForms)
		}
	} else {
		if strings.HasPrefix(rest, "/") {
			return location{}, fmt.Errorf("S3 location %q: %s", s, locationForms)
		}
		l.aws, l.endpoint = true, awsEndpoint
		if rest == "" {
			return location{}, fmt.Errorf("S3 location %q names no bucket: %s", s, locationForms)
		}
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return location{}, fmt.Errorf("S3 location %q: invalid bucket name %q: %v (bucket names are 3-63 lowercase letters, digits, dots and hyphens)", s, bucket, err)
	}
	l.bucket = bucket
	l.prefix = strings.TrimSuffix(prefix, "/")
	if l.prefix != "" {
		for _, seg := range strings.Split(l.prefix, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return location{}, fmt.Errorf("S3 location %q: the prefix %q has an empty, \".\" or \"..\" component: write it as a/b/c", s, l.prefix)
			}
		}
	}
	l.lookup = "auto"
	values, err := url.ParseQuery(query)
	if err != nil {
		return location{}, fmt.Errorf("S3 location %q: options after \"?\": %w", s, err)
	}
	for k, v := range values {
		if len(v) != 1 {
			return location{}, fmt.Errorf("S3 location: option %q given %d times: give it once", k, len(v))
		}
		switch val := v[0]; k {
		case "region":
			if val == "" {
				return location{}, fmt.Errorf("S3 location: region= is empty: give a region such as us-east-1")
			}
			l.region = val
		case "lookup":
			if _, ok := lookupStyles[val]; !ok {
				return location{}, fmt.Errorf("S3 location: lookup=%q: use lookup=path, lookup=dns (virtual-host style) or lookup=auto", val)
			}
			l.lookup = val
		case "insecure-http":
			switch val {
			case "true", "1":
				l.insecure = true
			case "false", "0":
			default:
				return location{}, fmt.Errorf("S3 location: insecure-http=%q: use insecure-http=true", val)
			}
		default:
			return location{}, fmt.Errorf("S3 location: unknown option %q (known: region=, lookup=path|dns|auto, insecure-http=true)", k)
		}
	}
	return l, nil
}

// isLoopback reports whether host[:port] names this machine.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// getenv returns the environment reader of opt.
func (o Options) getenv() func(string) string {
	if o.Getenv != nil {
		return o.Getenv
	}
	return os.Getenv
}
