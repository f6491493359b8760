package s3

import (
	"path/filepath"
	"sync"

	"github.com/minio/minio-go/v7/pkg/credentials"
)

// sourcedChain resolves credentials as the AWS tools do, in their order,
// and remembers which source gave them, so that errors and `coffer
// info` can name it (never the keys):
//
//  1. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
//     AWS_SESSION_TOKEN), read through Options.Getenv;
//  2. the shared credentials and config files (AWS_SHARED_CREDENTIALS_FILE
//     or ~/.aws/credentials, AWS_CONFIG_FILE or ~/.aws/config), profile
//     AWS_PROFILE or "default";
//  3. web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, as on
//     EKS), container credentials (ECS) and the instance role (EC2
//     metadata), through minio-go's IAM provider.
//
// With none of them, requests are anonymous.
type sourcedChain struct {
	sources []namedProvider

	mu    sync.Mutex
	curr  *namedProvider
	tried bool // a resolution ran; with curr nil, it found nothing
}

type namedProvider struct {
	name string
	p    credentials.Provider
}

var _ credentials.Provider = (*sourcedChain)(nil)

func newCredentials(getenv func(string) string) *sourcedChain {
	profile := getenv("AWS_PROFILE")
	fileName := "profile default in the AWS shared files (~/.aws)"
	if profile != "" {
		fileName = "profile " + profile + " in the AWS shared files (~/.aws)"
	}
	file := &credentials.FileAWSCredentials{Profile: profile}
	if f := getenv("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
		file.Filename = f
		fileName = "profile " + cmpOr(profile, "default") + " in " + filepath.Clean(f)
	}
	return &sourcedChain{sources: []namedProvider{
		{"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", envProvider{getenv}},
		{fileName, file},
		{"the web identity, container or instance role (IAM)", &credentials.IAM{}},
	}}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// RetrieveWithCredContext returns the first source's credentials that
// has any.
func (c *sourcedChain) RetrieveWithCredContext(cc *credentials.CredContext) (credentials.Value, error) {
	for i := range c.sources {
		v, _ := c.sources[i].p.RetrieveWithCredContext(cc)
		if v.AccessKeyID == "" && v.SecretAccessKey == "" {
			continue
		}
		c.mu.Lock()
		c.curr = &c.sources[i]
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Lock()
	c.curr, c.tried = nil, true
	c.mu.Unlock()
	return credentials.Value{SignerType: credentials.SignatureAnonymous}, nil
}

// Retrieve is RetrieveWithCredContext without a context.
func (c *sourcedChain) Retrieve() (credentials.Value, error) {
	return c.RetrieveWithCredContext(nil)
}

// IsExpired reports whether the source in use wants to be asked again.
func (c *sourcedChain) IsExpired() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.curr == nil {
		// Nothing found is not asked again for every request (the
		// instance metadata service may take seconds to not answer).
		return !c.tried
	}
	return c.curr.p.IsExpired()
}

// noCredentials is source's answer when the chain found nothing.
const noCredentials = "none (anonymous: no AWS_ACCESS_KEY_ID, no profile in ~/.aws, no IAM role)"

// source names where the credentials in use came from, for messages.
func (c *sourcedChain) source() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.curr == nil {
		return noCredentials
	}
	return c.curr.name
}

// envProvider reads the AWS variables through getenv rather than the
// process environment, so that in-process tests can set them.
type envProvider struct{ getenv func(string) string }

// RetrieveWithCredContext is Retrieve: the environment needs no context.
func (p envProvider) RetrieveWithCredContext(*credentials.CredContext) (credentials.Value, error) {
	return p.Retrieve()
}

// Retrieve returns the keys in the environment, or nothing when the
// access key or the secret is missing.
func (p envProvider) Retrieve() (credentials.Value, error) {
	id := cmpOr(p.getenv("AWS_ACCESS_KEY_ID"), p.getenv("AWS_ACCESS_KEY"))
	secret := cmpOr(p.getenv("AWS_SECRET_ACCESS_KEY"), p.getenv("AWS_SECRET_KEY"))
	if id == "" || secret == "" {
		return credentials.Value{}, nil
	}
	return credentials.Value{
		AccessKeyID: id, SecretAccessKey: secret, SessionToken: p.getenv("AWS_SESSION_TOKEN"),
		SignerType: credentials.SignatureV4,
	}, nil
}

// halfSetKeys says which of the access key and its secret the
// environment sets without the other, which the chain then passes over as
// if neither were set; "" when both or neither are set.
func halfSetKeys(getenv func(string) string) string {
	id := cmpOr(getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_ACCESS_KEY"))
	secret := cmpOr(getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SECRET_KEY"))
	switch {
	case id != "" && secret == "":
		return "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is empty: set both"
	case id == "" && secret != "":
		return "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is empty: set both"
	}
	return ""
}

// IsExpired is false: the environment does not change under a process.
func (envProvider) IsExpired() bool { return false }
