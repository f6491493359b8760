package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The S3 scenarios (-s3; issue 17's speed lines), in report order.
const (
	// s3Backup is coffer's first backup of the dataset into the server.
	s3Backup = "coffer: first backup into S3"
	// s3UploadGo uploads the files of a local coffer repository of the
	// same dataset with minio-go, the client coffer's S3 store uses,
	// as many objects at a time as coffer uploads packs.
	s3UploadGo = "minio-go uploader: same repository's files"
	// s3UploadAWS is `aws s3 cp --recursive` of the same files.
	s3UploadAWS = "aws s3 cp --recursive: same files"
	// s3Restore is coffer's full restore of that backup, with an empty
	// cache directory.
	s3Restore = "coffer: restore from S3"
	// s3DownloadGo downloads every object the backup wrote with
	// minio-go, as many at a time as coffer's restore reads packs.
	s3DownloadGo = "minio-go downloader: the backup's objects"
	// s3DownloadAWS is `aws s3 cp --recursive` of the same objects.
	s3DownloadAWS = "aws s3 cp --recursive: the backup's objects"
)

var s3Scenarios = []string{s3Backup, s3UploadGo, s3UploadAWS, s3Restore, s3DownloadGo, s3DownloadAWS}

// s3Target is issue 17's: coffer at most 1.25x the copy tool, both ways.
const s3Target = 1.25

// s3Concurrency is how many objects the minio-go baseline moves at once:
// storage/s3's Store.Concurrency (packs uploaded at once) and the
// restore's default workers (packs read at once) are both 4.
const s3Concurrency = 4

// s3CopyEnv, set to "up" or "down", makes the harness binary serve as the
// minio-go baseline (s3Copy), so that it is measured as a child process
// like the other commands.
const s3CopyEnv = "COFFER_BENCH_S3COPY"

// s3SectionTitle starts the section the S3 report owns in -out.
const s3SectionTitle = "## S3 store"

// s3Region is the region the server signs for.
const s3Region = "us-east-1"

// s3server is a VersityGW process serving S3 on loopback, posix backend.
type s3server struct {
	cmd            *exec.Cmd
	addr           string // host:port
	data           string // the posix backend's root: a directory per bucket
	access, secret string
}

// startS3 starts VersityGW on a free 127.0.0.1 port with its posix
// backend under dir, in single-account mode with random root keys, as
// internal/testregistry.StartS3 does.
func startS3(bin, dir string) (*s3server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	key := make([]byte, 26)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	s := &s3server{addr: addr, data: filepath.Join(dir, "s3-data"), access: "bench" + hex.EncodeToString(key[:6]), secret: hex.EncodeToString(key[6:])}
	if err := os.MkdirAll(s.data, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "versitygw.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the S3 server's log: %w", err)
	}
	s.cmd = exec.Command(bin, "--port", addr, "--quiet", "--region", s3Region, "posix", s.data)
	// The keys go in the environment, not on the command line.
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.access, "ROOT_SECRET_KEY="+s.secret)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	logf.Close()
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := client.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			return s, nil // any answer (403 without credentials) is up
		}
	}
	s.stop()
	return nil, fmt.Errorf("the S3 server did not answer on %s within 30 s (see %s)", addr, logPath)
}

// cpu returns the server's CPU time so far.
func (s *s3server) cpu() time.Duration { return procCPU(s.cmd.Process.Pid) }

func (s *s3server) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// env is what a client of the server needs in its environment: the keys,
// the region, and no AWS configuration files of the user's.
func (s *s3server) env(dir string) []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.access, "AWS_SECRET_ACCESS_KEY=" + s.secret, "AWS_REGION=" + s3Region,
		"AWS_DEFAULT_REGION=" + s3Region, "AWS_CONFIG_FILE=" + filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "no-aws-credentials"), "AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER="}
}

// newS3Client returns a minio-go client of endpoint (host:port, plain
// HTTP), path-style, with an HTTP transport like storage/s3's.
func newS3Client(endpoint, access, secret string) (*minio.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	return minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), Region: s3Region,
		BucketLookup: minio.BucketLookupPath, Transport: tr})
}

// listSize returns the number and total size of the objects under prefix.
func listSize(ctx context.Context, c *minio.Client, bucket, prefix string) (int, int64, error) {
	var n int
	var size int64
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true}) {
		if o.Err != nil {
			return 0, 0, o.Err
		}
		n++
		size += o.Size
	}
	return n, size, nil
}

// s3Copy is the minio-go baseline: "up DIR BUCKET PREFIX" uploads every
// file under DIR to BUCKET/PREFIX/ (relative path as key), "down DIR
// BUCKET PREFIX" downloads every object under BUCKET/PREFIX/ into DIR,
// s3Concurrency objects at a time, endpoint and keys from the
// environment. Uploads are single PUTs up to 64 MiB and parts of 16 MiB
// above, as storage/s3's (without its Content-MD5 and conditional
// headers, which only cost coffer).
func s3Copy(mode string, args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: %s=up|down bench DIR BUCKET PREFIX", s3CopyEnv)
	}
	dir, bucket, prefix := args[0], args[1], args[2]
	c, err := newS3Client(os.Getenv("COFFER_BENCH_S3_ENDPOINT"), os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"))
	if err != nil {
		return err
	}
	ctx := context.Background()
	keys := make(chan string)
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	for range s3Concurrency {
		wg.Go(func() {
			for k := range keys {
				var err error
				if mode == "up" {
					err = uploadFile(ctx, c, bucket, prefix, dir, k)
				} else {
					err = downloadObject(ctx, c, bucket, prefix, dir, k)
				}
				if err != nil {
					fail(err)
				}
			}
		})
	}
	var feedErr error
	switch mode {
	case "up":
		feedErr = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, err := filepath.Rel(dir, path)
			keys <- filepath.ToSlash(rel)
			return err
		})
	case "down":
		for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true}) {
			if o.Err != nil {
				feedErr = o.Err
				break
			}
			keys <- strings.TrimPrefix(o.Key, prefix+"/")
		}
	default:
		feedErr = fmt.Errorf("unknown mode %q", mode)
	}
	close(keys)
	wg.Wait()
	return errors.Join(feedErr, first)
}

func uploadFile(ctx context.Context, c *minio.Client, bucket, prefix, dir, rel string) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = c.PutObject(ctx, bucket, prefix+"/"+rel, f, info.Size(), minio.PutObjectOptions{
		ContentType: "application/octet-stream", DisableMultipart: info.Size() <= 64<<20, PartSize: 16 << 20})
	if err != nil {
		return fmt.Errorf("uploading %s: %w", rel, err)
	}
	return nil
}

func downloadObject(ctx context.Context, c *minio.Client, bucket, prefix, dir, rel string) error {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	o, err := c.GetObject(ctx, bucket, prefix+"/"+rel, minio.GetObjectOptions{})
	if err != nil {
		return fmt.Errorf("downloading %s: %w", rel, err)
	}
	defer o.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, o); err != nil {
		f.Close()
		return fmt.Errorf("downloading %s: %w", rel, err)
	}
	return f.Close()
}

// findAWS returns the aws CLI to compare with, or "": Debian's
// (/usr/bin/aws) first, else the first on PATH.
func findAWS() string {
	if executable("/usr/bin/aws") {
		return "/usr/bin/aws"
	}
	p, _ := exec.LookPath("aws")
	return p
}

// versityPin returns the VersityGW version tools/go.mod pins (its
// binary says only "git"), or "(version unknown)".
func versityPin() string {
	root, err := cofferRoot()
	if err != nil {
		return "(version unknown)"
	}
	b, err := os.ReadFile(filepath.Join(root, "tools", "go.mod"))
	if err != nil {
		return "(version unknown)"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/versity/versitygw" {
			return f[1]
		}
	}
	return "(version unknown)"
}

// S3Result holds the samples of one dataset: scenario -> runs.
type S3Result struct {
	Dataset *Dataset
	Samples map[string][]Sample
	// Objects and Bytes are what the (first run's) backup stored.
	Objects int
	Bytes   int64
}

// S3Report is what the S3 section says.
type S3Report struct {
	Command  string
	Date     time.Time
	Machine  string
	Versions string
	AWS      string // the aws CLI's version, or "" when there is none
	Runs     int
	Quick    bool
	Results  []*S3Result
	Elapsed  time.Duration
	Load     []string
}

// s3Bench measures the S3 scenarios runs times on ds. A local repository
// of the dataset, whose files the uploaders copy, is made once (not
// measured); each run starts a VersityGW of its own on an empty directory
// and removes it at the end.
func s3Bench(rn *runner, b *binaries, aws string, ds *Dataset, runs int, keep bool, dir, restoreDir string) (*S3Result, error) {
	res := &S3Result{Dataset: ds, Samples: map[string][]Sample{}}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("removing an earlier S3 benchmark: %w", err)
	}
	local := filepath.Join(dir, "local", "repo")
	localCache := filepath.Join(dir, "local", "cache")
	logf("%-10s s3: backing up into a local repository, the uploaders' source (not measured)", ds.Name)
	for _, args := range [][]string{{"create"}, {"backup", ds.Dir}} {
		c := command{argv: append([]string{b.coffer, "at", local}, args...),
			env: []string{"COFFER_PASSPHRASE=" + passphrase, "COFFER_CACHE_DIR=" + localCache}}
		if _, err := rn.run(c); err != nil {
			return nil, err
		}
	}
	for r := range runs {
		runDir := filepath.Join(dir, fmt.Sprintf("run%d", r))
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", runDir, err)
		}
		srv, err := startS3(b.versitygw, runDir)
		if err != nil {
			return nil, err
		}
		err = s3Run(rn, srv, b, aws, ds, res, r, local, runDir, restoreDir)
		srv.stop()
		if err != nil {
			return nil, fmt.Errorf("dataset %s, S3 run %d: %w", ds.Name, r+1, err)
		}
		if keep && r == runs-1 {
			logf("kept the last run's S3 data in %s", srv.data)
			break
		}
		if err := os.RemoveAll(runDir); err != nil {
			return nil, fmt.Errorf("removing the S3 data of run %d: %w", r+1, err)
		}
	}
	if !keep {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("removing the S3 benchmark's repositories: %w", err)
		}
	}
	return res, nil
}

// s3Run is run r of s3Bench, on the server srv.
func s3Run(rn *runner, srv *s3server, b *binaries, aws string, ds *Dataset, res *S3Result, r int, local, runDir, restoreDir string) error {
	ctx := context.Background()
	client, err := newS3Client(srv.addr, srv.access, srv.secret)
	if err != nil {
		return err
	}
	const cofferBucket, goBucket, awsBucket = "coffer", "baseline-go", "baseline-aws"
	for _, bk := range []string{cofferBucket, goBucket, awsBucket} {
		if err := client.MakeBucket(ctx, bk, minio.MakeBucketOptions{Region: s3Region}); err != nil {
			return fmt.Errorf("creating bucket %s: %w", bk, err)
		}
	}
	prefix := fmt.Sprintf("%s-%d", ds.Name, r)
	env := srv.env(runDir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	coffer := func(cache string, args ...string) command {
		return command{argv: append([]string{b.coffer, "at", "s3://" + srv.addr + "/" + cofferBucket + "/" + prefix}, args...),
			env: append([]string{"COFFER_PASSPHRASE=" + passphrase, "COFFER_CACHE_DIR=" + cache}, env...)}
	}
	goCopy := func(mode, dir, bucket string) command {
		return command{argv: []string{self, dir, bucket, prefix},
			env: append([]string{s3CopyEnv + "=" + mode, "COFFER_BENCH_S3_ENDPOINT=" + srv.addr}, env...)}
	}
	awsCp := func(src, dst string) command {
		return command{argv: []string{aws, "--endpoint-url", "http://" + srv.addr, "s3", "cp", "--recursive", "--only-show-errors", src, dst}, env: env}
	}
	if _, err := rn.run(coffer(filepath.Join(runDir, "cache-backup"), "create")); err != nil {
		return err
	}
	localSize, err := dirSize(local)
	if err != nil {
		return err
	}
	emptyRestore := func() error {
		if err := os.RemoveAll(restoreDir); err != nil {
			return fmt.Errorf("emptying the restore directory: %w", err)
		}
		return os.MkdirAll(restoreDir, 0o755)
	}
	// measure runs c with an empty restore directory, adds the server's
	// CPU time to the command's, and checks what it did with check.
	measure := func(sc string, c command, check func() (int64, error)) error {
		if err := emptyRestore(); err != nil {
			return err
		}
		cpu := srv.cpu()
		s, err := rn.run(c)
		if err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
		s.CPU += srv.cpu() - cpu
		if s.Stored, err = check(); err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
		logf("%-10s run %d  %-44s %8.2fs wall %8.2fs cpu %6d MiB rss  %s moved", ds.Name, r+1, sc, s.Wall.Seconds(), s.CPU.Seconds(), s.MaxRSSKiB>>10, human(s.Stored))
		res.Samples[sc] = append(res.Samples[sc], s)
		return nil
	}
	// uploaded checks that bucket/prefix holds as much as the local
	// repository.
	uploaded := func(bucket string) func() (int64, error) {
		return func() (int64, error) {
			_, n, err := listSize(ctx, client, bucket, prefix)
			if err == nil && n != localSize {
				err = fmt.Errorf("%d bytes uploaded, the local repository holds %d", n, localSize)
			}
			return n, err
		}
	}
	// downloaded checks that the restore directory holds as much as
	// coffer's backup stored.
	downloaded := func() (int64, error) {
		_, want, err := listSize(ctx, client, cofferBucket, prefix)
		if err != nil {
			return 0, err
		}
		n, err := dirSize(restoreDir)
		if err == nil && n != want {
			err = fmt.Errorf("%d bytes downloaded, the backup stored %d", n, want)
		}
		return n, err
	}
	do := func(sc string) error {
		switch sc {
		case s3Backup:
			return measure(sc, coffer(filepath.Join(runDir, "cache-backup"), "backup", ds.Dir), func() (int64, error) {
				n, size, err := listSize(ctx, client, cofferBucket, prefix)
				if err == nil && size == 0 {
					err = errors.New("the backup stored nothing")
				}
				res.Objects, res.Bytes = n, size
				return size, err
			})
		case s3UploadGo:
			return measure(sc, goCopy("up", local, goBucket), uploaded(goBucket))
		case s3UploadAWS:
			return measure(sc, awsCp(local, "s3://"+awsBucket+"/"+prefix+"/"), uploaded(awsBucket))
		case s3Restore:
			return measure(sc, coffer(filepath.Join(runDir, "cache-restore"), "restore", "latest", "-to", restoreDir), func() (int64, error) {
				if r == 0 {
					if err := sameTree(ds, restoreDir); err != nil {
						return 0, fmt.Errorf("the restore differs from the dataset: %w", err)
					}
				}
				want, err := dirSize(ds.Dir)
				if err != nil {
					return 0, err
				}
				n, err := dirSize(restoreDir)
				if err == nil && n != want {
					err = fmt.Errorf("the restore wrote %d bytes, the dataset holds %d", n, want)
				}
				return n, err
			})
		case s3DownloadGo:
			return measure(sc, goCopy("down", restoreDir, cofferBucket), downloaded)
		case s3DownloadAWS:
			return measure(sc, awsCp("s3://"+cofferBucket+"/"+prefix+"/", restoreDir), downloaded)
		}
		return fmt.Errorf("unknown scenario %q", sc)
	}
	// The uploads take turns, then the downloads (which read the backup),
	// in an order that rotates from run to run.
	ups, downs := []string{s3Backup, s3UploadGo}, []string{s3Restore, s3DownloadGo}
	if aws != "" {
		ups, downs = append(ups, s3UploadAWS), append(downs, s3DownloadAWS)
	}
	for _, group := range [][]string{ups, downs} {
		rot := r % len(group)
		for _, sc := range append(slices.Clone(group[rot:]), group[:rot]...) {
			if err := do(sc); err != nil {
				return err
			}
		}
	}
	return os.RemoveAll(restoreDir)
}

// write puts the S3 section into the file at path, replacing an earlier
// one, and returns its markdown.
func (r *S3Report) write(path string) (string, error) {
	md := r.markdown()
	return md, writeSection(path, s3SectionTitle, md)
}

// markdown renders the S3 section.
func (r *S3Report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("%s\n\n", s3SectionTitle)
	p("Written by `bench/` with `-s3` (see bench/README.md): issue 17's speed lines for the S3 store. Every figure is the median of %d run(s)", r.Runs)
	if r.Quick {
		p(" of the **scaled-down `-quick` dataset**, a smoke test rather than a measurement")
	}
	p(".\n\n")
	p("Command: `%s` (%s in total)\n\n", r.Command, r.Elapsed.Round(time.Second))
	p("Date: %s. Machine: %s.\n\n", r.Date.Format("2006-01-02"), r.Machine)
	p("Versions: %s", r.Versions)
	if r.AWS != "" {
		p(", `%s`", r.AWS)
	}
	p(".\n\n")
	if len(r.Load) > 0 {
		p("Load average (1 min) at the start and end of the runs: %s, on %d CPUs.\n\n", strings.Join(r.Load, ", "), runtime.NumCPU())
	}
	p("What is measured, each run against a VersityGW of its own on 127.0.0.1 (posix backend on the scratch directory's disk, plain HTTP, started on an empty directory):\n\n")
	p("- **%s**: `coffer at s3://127.0.0.1:PORT/coffer/PREFIX backup DATASET` into a repository created beforehand (not measured);\n", s3Backup)
	p("- **%s**: the files of a local coffer repository of the same dataset (made once, not measured; the same size as the backup's objects to within a few KiB) uploaded by a Go program on minio-go, the client of coffer's S3 store, %d objects at a time as coffer uploads %d packs at a time, single PUTs up to 64 MiB;\n", s3UploadGo, s3Concurrency, s3Concurrency)
	p("- **%s**: the same files with the AWS CLI at its defaults (10 requests at a time, multipart above 8 MiB), when it is installed;\n", s3UploadAWS)
	p("- **%s**: `coffer at s3://... restore latest -to DIR`, with an empty cache directory (so the index is downloaded too), into the restore directory (tmpfs); its default %d pack readers;\n", s3Restore, s3Concurrency)
	p("- **%s**: every object the backup wrote (packs, index, snapshot, keys, config) downloaded by the minio-go program, %d at a time, into the restore directory;\n", s3DownloadGo, s3Concurrency)
	p("- **%s**: the same objects with `aws s3 cp --recursive`.\n\n", s3DownloadAWS)
	p("The uploads take turns, then the downloads, in an order that rotates from run to run. CPU time is the client's user + system plus the server's during the command; peak RSS is the client's. \"moved\" is what the bucket holds under the prefix after an upload, what was written into the restore directory after a download. ")
	p("The first run compares coffer's restore with the dataset byte for byte; every run checks the sizes moved. The dataset and the local repository are read warm (page cache).\n\n")
	for _, res := range r.Results {
		ds := res.Dataset
		p("### %s\n\n", ds.Name)
		p("%d files, %s; the backup stored %d objects, %s.\n\n", len(ds.Files), human(ds.Bytes), res.Objects, human(res.Bytes))
		p("| scenario | wall | CPU (client + server) | peak RSS | moved |\n|---|---:|---:|---:|---:|\n")
		for _, sc := range s3Scenarios {
			if len(res.Samples[sc]) == 0 {
				continue
			}
			m := medianSample(res.Samples[sc])
			p("| %s | %s | %s | %s | %s |\n", sc, seconds(m.Wall.Seconds()), seconds(m.CPU.Seconds()), human(m.MaxRSSKiB*1024), human(m.Stored))
		}
		p("\nWall time of each run:\n\n| scenario |")
		for i := range r.Runs {
			p(" run %d |", i+1)
		}
		p("\n|---|%s\n", strings.Repeat("---:|", r.Runs))
		for _, sc := range s3Scenarios {
			if len(res.Samples[sc]) == 0 {
				continue
			}
			p("| %s |", sc)
			for _, s := range res.Samples[sc] {
				p(" %s |", seconds(s.Wall.Seconds()))
			}
			p("\n")
		}
		p("\n")
		for _, cmp := range [][2]string{{s3Backup, s3UploadGo}, {s3Backup, s3UploadAWS}, {s3Restore, s3DownloadGo}, {s3Restore, s3DownloadAWS}} {
			a, bs := res.Samples[cmp[0]], res.Samples[cmp[1]]
			if len(a) == 0 || len(bs) == 0 {
				continue
			}
			ma, mb := medianSample(a), medianSample(bs)
			ratio := ma.Wall.Seconds() / mb.Wall.Seconds()
			p("- %s / %s, ratio of the median wall times: **%.2f** (target: at most %.2f): %s", cmp[0], cmp[1], ratio, s3Target, metOrMissed(ratio <= s3Target))
			if mb.CPU > 0 {
				p("; of the median CPU times: %.2f", ma.CPU.Seconds()/mb.CPU.Seconds())
			}
			var perRun []string
			for i := range min(len(a), len(bs)) {
				perRun = append(perRun, fmt.Sprintf("%.2f", a[i].Wall.Seconds()/bs[i].Wall.Seconds()))
			}
			if len(perRun) > 1 {
				p("; within each run: %s", strings.Join(perRun, ", "))
			}
			p(".\n")
		}
		p("\n")
	}
	return b.String()
}
