package store

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// Lock holds one key's lock; the kernel drops it if the process dies, so a
// killed gsim never leaves a key locked.
type Lock struct{ fl *flock.Flock }

// Unlock releases the key.
func (l *Lock) Unlock() error { return l.fl.Unlock() }

// Lock takes key's lock, blocking until ctx ends. If another process (or
// another instance of this run) holds it, waiting is called once before
// blocking, so the user learns why nothing moves. It reports whether it had
// to wait.
func (s *Store) Lock(ctx context.Context, key string, waiting func()) (*Lock, bool, error) {
	fl := flock.New(s.lockPath(key))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", key, err)
	}
	if ok {
		return &Lock{fl}, false, nil
	}
	if waiting != nil {
		waiting()
	}
	ok, err = fl.TryLockContext(ctx, 50*time.Millisecond)
	if err != nil {
		return nil, true, fmt.Errorf("lock %s: %w", key, err)
	}
	if !ok {
		return nil, true, fmt.Errorf("lock %s: %w", key, ctx.Err())
	}
	return &Lock{fl}, true, nil
}

// TryLock takes key's lock only if it is free.
func (s *Store) TryLock(key string) (*Lock, bool, error) {
	fl := flock.New(s.lockPath(key))
	ok, err := fl.TryLock()
	if err != nil || !ok {
		return nil, false, err
	}
	return &Lock{fl}, true, nil
}

// Use marks the store as in use by a run until the returned lock is
// released (a shared lock: many runs may hold it). Clean removes objects,
// links and failed attempts only when no run holds it, so it never deletes
// an object a live run has committed but not linked yet, or is reading.
// Use waits while a clean is removing things.
func (s *Store) Use(ctx context.Context) (*Lock, error) {
	fl := flock.New(s.usePath())
	ok, err := fl.TryRLockContext(ctx, 50*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("store %s in use: %w", s.Root, err)
	}
	if !ok {
		return nil, fmt.Errorf("store %s in use: %w", s.Root, ctx.Err())
	}
	return &Lock{fl}, nil
}

// tryExclusive takes the store for Clean if no run holds it.
func (s *Store) tryExclusive() (*Lock, bool, error) {
	fl := flock.New(s.usePath())
	ok, err := fl.TryLock()
	if err != nil || !ok {
		return nil, false, err
	}
	return &Lock{fl}, true, nil
}

// usePath is not a key's lock: keys are hex digests.
func (s *Store) usePath() string { return filepath.Join(s.Root, "locks", "store.lock") }

func (s *Store) lockPath(key string) string {
	return filepath.Join(s.Root, "locks", key+".lock")
}
