package testregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/minio/minio-go/v7"
)

// seaweedArgs returns the arguments of `weed server` with its S3 gateway
// on s3Port and every other port free, its data under s.DataDir, and an
// identity with the server's keys in a config file under dir (not on the
// command line, where every user of the machine could read them).
// certFile and keyFile, when set, make the gateway serve TLS.
func (s *S3Server) seaweedArgs(dir string, s3Port int, certFile, keyFile string) ([]string, error) {
	config, err := json.Marshal(map[string]any{"identities": []any{map[string]any{
		"name":        "coffer",
		"credentials": []any{map[string]string{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}})
	if err != nil {
		return nil, err
	}
	configFile := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(configFile, config, 0o600); err != nil {
		return nil, err
	}
	// The master, volume server, filer and gateway each listen for HTTP
	// and gRPC.
	names := []string{"master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
		"filer.port", "filer.port.grpc", "s3.port.grpc"}
	args := []string{"server", "-dir=" + s.DataDir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-filer", "-s3", "-s3.port=" + strconv.Itoa(s3Port), "-s3.config=" + configFile,
		// Off: the Iceberg and Lance catalogs (fixed ports otherwise),
		// telemetry, the volume server's 10 s wait before it stops.
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false", "-volume.preStopSeconds=0",
		// Each bucket is a collection with volumes of its own: enough
		// of them, small, for a test's few buckets.
		"-volume.max=0", "-master.volumeSizeLimitMB=256"}
	for _, name := range names {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		args = append(args, fmt.Sprintf("-%s=%d", name, port))
	}
	if certFile != "" {
		args = append(args, "-s3.cert.file="+certFile, "-s3.key.file="+keyFile)
	}
	return args, nil
}

// seaweedReady reports whether SeaweedFS stores objects: its gateway
// answers before the volume server has joined the master, and a PUT
// until then fails. It writes and removes an object in a bucket of its
// own, which it removes too.
func (s *S3Server) seaweedReady() error {
	if err := s.answers(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s.Client(s.t)
	const bucket = "coffer-ready-probe"
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		if minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return err
		}
	}
	if _, err := c.PutObject(ctx, bucket, "probe", bytes.NewReader([]byte("probe")), 5, minio.PutObjectOptions{}); err != nil {
		return err
	}
	if err := c.RemoveObject(ctx, bucket, "probe", minio.RemoveObjectOptions{}); err != nil {
		return err
	}
	return c.RemoveBucket(ctx, bucket)
}
