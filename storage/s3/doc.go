// Package s3 implements storage.Store on S3 and S3-compatible object
// storage (AWS, MinIO, Ceph RGW, SeaweedFS, VersityGW, Wasabi, R2, B2,
// Garage), with github.com/minio/minio-go/v7 for the protocol, request
// signing and the credential chain.
//
// A repository is a prefix of a bucket, laid out as a local repository
// directory is (storage/local), so that a copy of the prefix made with
// `aws s3 sync` or `mc mirror` is a valid local repository and back:
//
//	<prefix>/config                  repository config, written by Create
//	<prefix>/packs/<ab>/<abcdef...>  packs, under the first two characters
//	<prefix>/index/<name>            index objects
//	<prefix>/snapshots/<name>        snapshot objects
//	<prefix>/keys/<name>             wrapped master keys
//	<prefix>/locks/<name>            locks
//	<prefix>/plans/<name>            prune plans
//	<prefix>/forgotten/<name>        removal records
//
// S3 gives what the storage contract asks for without help: a PUT (and a
// completed multipart upload) is atomic, and since December 2020 AWS S3,
// like the compatible servers, reads after writes and lists strongly.
// What this package adds is the contract's checks: every range is
// checked against the answer's Content-Range and length, every read
// against its length, uploads carry Content-MD5 (the server refuses
// bytes that do not match), and every operation is retried within a
// time budget (retry.go).
package s3
