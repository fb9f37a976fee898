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

func (s *Store) lockPath(key string) string {
	return filepath.Join(s.Root, "locks", key+".lock")
}
