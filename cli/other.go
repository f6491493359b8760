package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/all"
)

// otherRepo is the second repository of sync and create -from.
type otherRepo struct {
	*repo.Repository
	lock *repo.Lock
}

// openOther opens the repository at location, for sync or create -from.
// Its passphrase comes from -other-passphrase-file or
// COFFER_OTHER_PASSPHRASE; without them, the passphrase of the command's
// own repository is tried (two copies of one repository usually share
// it), then a prompt asks on a terminal.
func (a *app) openOther(ctx context.Context, location string) (*otherRepo, error) {
	location, sc, err := a.resolveStore(location)
	if err != nil {
		return nil, err
	}
	o := a.ociOptions()
	if sc != nil {
		// The other store's own options, where this command's flags
		// were meant for the command's store.
		o.CAFile = cmp.Or(sc.CAFile, o.CAFile)
		o.InsecureHTTP = o.InsecureHTTP || sc.InsecureHTTP
		if err := a.registryCredentials(ctx, &o, sc); err != nil {
			return nil, err
		}
	}
	s3o := a.s3Options()
	s3o.CAFile, s3o.InsecureHTTP = o.CAFile, o.InsecureHTTP
	st, err := all.Registry(all.Options{OCI: o, S3: s3o}).Open(ctx, location)
	if err != nil {
		return nil, err
	}
	opts := a.openOptions()
	given := func() ([]byte, error) {
		if a.g.otherPassFile != "" {
			return readPassphraseFile(a.g.otherPassFile)
		}
		if pw := a.env.Getenv("COFFER_OTHER_PASSPHRASE"); pw != "" {
			return []byte(pw), nil
		}
		return a.storePassphrase(ctx, sc)
	}
	pw, err := given()
	if err != nil {
		st.Close()
		return nil, err
	}
	if pw == nil && a.pw == nil && a.repo != nil {
		// This repository's keys came from the key cache: its
		// passphrase, if one is given, is still the first to try.
		if a.pw, err = a.givenPassphrase(ctx); err != nil {
			st.Close()
			return nil, err
		}
	}
	var r *repo.Repository
	switch {
	case pw != nil:
		r, err = repo.Open(ctx, st, func() ([]byte, error) { return pw, nil }, opts)
	case a.pw != nil:
		r, err = repo.Open(ctx, st, func() ([]byte, error) { return a.pw, nil }, opts)
		if errors.Is(err, repo.ErrWrongPassphrase) {
			r, err = repo.Open(ctx, st, func() ([]byte, error) {
				pw, perr := a.prompt("passphrase of "+st.Location(), false)
				if perr != nil {
					return nil, fmt.Errorf("the passphrase of %s differs from this repository's: %w", st.Location(), errOtherPassphrase)
				}
				return pw, nil
			}, opts)
		}
	default:
		r, err = repo.Open(ctx, st, func() ([]byte, error) { return a.prompt("passphrase of "+st.Location(), false) }, opts)
	}
	if err != nil {
		st.Close()
		if errors.Is(err, storage.ErrNotFound) && !errors.Is(err, repo.ErrCorrupt) && !errors.Is(err, storage.ErrNotCreatable) {
			return nil, fmt.Errorf("%w; create one with `coffer at %s create`", err, location)
		}
		return nil, fmt.Errorf("%s: %w", location, err)
	}
	return &otherRepo{Repository: r}, nil
}

// errOtherPassphrase says how to give the other repository's passphrase.
var errOtherPassphrase = fmt.Errorf("give it with -other-passphrase-file or COFFER_OTHER_PASSPHRASE: %w", repo.ErrWrongPassphrase)

// close flushes what was written to the other repository, releases its
// lock and closes it, as closeRepo does for the command's own.
func (o *otherRepo) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := storage.Flush(ctx, o.Store())
	if err != nil {
		err = fmt.Errorf("finishing writes to %s: %w", o.Store().Location(), err)
	}
	if o.lock != nil {
		if uerr := o.lock.Unlock(); uerr != nil && err == nil {
			err = uerr
		}
	}
	if cerr := o.Repository.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
