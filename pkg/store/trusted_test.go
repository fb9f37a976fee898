package store

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A digest handed over by HashingFile is used at commit only while the file
// is exactly as written; a file changed since (size or mtime) is hashed.
func TestCommitTakesDigestsComputedWhileWriting(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	for _, c := range []struct {
		name   string
		change func(p string)
		want   []byte
	}{
		{"unchanged", func(string) {}, []byte("rows\n")},
		{"rewritten after close", func(p string) {
			os.WriteFile(p, []byte("ROWS\n"), 0o644)
			os.Chtimes(p, time.Now(), time.Now().Add(time.Second))
		}, []byte("ROWS\n")},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := "k-" + c.name[:3]
			staging, err := s.NewStaging(key)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(staging, "out.csv")
			f, err := CreateHashing(p)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("rows\n"))
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			c.change(p)
			m := &Manifest{Key: key}
			if err := s.Commit(staging, m); err != nil {
				t.Fatal(err)
			}
			if len(m.Files) != 1 || m.Files[0].SHA256 != sum(c.want) {
				t.Fatalf("manifest %+v, want sha256 %s", m.Files, sum(c.want))
			}
			if probs, err := s.Verify(key); err != nil || len(probs) > 0 {
				t.Fatalf("verify: %v %v", probs, err)
			}
		})
	}
	// A digest for a file that another folder's commit never took is not
	// left behind for a later folder of the same path.
	trustMu.Lock()
	n := len(trusted)
	trustMu.Unlock()
	if n != 0 {
		t.Fatalf("%d trusted digests left after commit", n)
	}
}

// The handed-over digest really stands for reading the file (a wrong one is
// recorded as given), and Verify, which always reads, catches it.
func TestTrustedDigestIsUsedAndVerifyRereads(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	staging, err := s.NewStaging("k")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(staging, "out.csv")
	if err := os.WriteFile(p, []byte("rows\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := hex.EncodeToString(make([]byte, 32))
	if err := trustWritten(p, fake); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Key: "k"}
	if err := s.Commit(staging, m); err != nil {
		t.Fatal(err)
	}
	if m.Files[0].SHA256 != fake {
		t.Fatalf("commit read the file instead of taking the handed-over digest")
	}
	if probs, err := s.Verify("k"); err != nil || len(probs) != 1 {
		t.Fatalf("verify found %v (%v), want the digest mismatch", probs, err)
	}
}
