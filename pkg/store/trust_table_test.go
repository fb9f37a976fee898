package store

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// The trust table lets Check skip a manifest only while it is the very file
// the entry was made from; damage to the object is found either way.
func TestTrustTable(t *testing.T) {
	root := t.TempDir()
	s, _ := Open(root)
	key := tk("k")
	m := commitOne(t, s, key, map[string]string{"a.txt": "hello", "b.txt": "world"})
	s.UseTrust("exp")
	if r := s.Check(key); !r.Complete {
		t.Fatal(r)
	}
	if err := s.SaveTrust(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(s.CacheDir("trust")); len(ents) != 0 {
		t.Error("a manifest written within the last second was remembered")
	}
	time.Sleep(racyWindow + 100*time.Millisecond)
	s.UseTrust("exp")
	s.Check(key)
	if err := s.SaveTrust(); err != nil {
		t.Fatal(err)
	}

	// A later process.
	s2, _ := OpenExisting(root)
	s2.UseTrust("exp")
	fi, _ := os.Lstat(filepath.Join(s2.ObjectDir(key), ManifestFile))
	got := s2.trust.Load().trusted(key, sigOfInfo(fi))
	if got == nil || got.OutputDigest != m.OutputDigest || !reflect.DeepEqual(got.Files, m.Files) {
		t.Fatalf("trusted manifest = %+v, want digest %s and files %+v", got, m.OutputDigest, m.Files)
	}
	if r := s2.Check(key); !r.Complete || r.Manifest.OutputDigest != m.OutputDigest {
		t.Errorf("check through the trust table: %+v", r)
	}
	// Damage is still seen.
	p := filepath.Join(s2.ObjectDir(key), "a.txt")
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("hello!"), 0o644)
	if r := s2.Check(key); r.Complete || !r.Damaged {
		t.Errorf("appended bytes under a trusted manifest: %+v", r)
	}
	os.Remove(filepath.Join(s2.ObjectDir(key), ManifestFile))
	if r := s2.Check(key); r.Complete || !r.Damaged {
		t.Errorf("removed manifest: %+v", r)
	}
	// A rewritten manifest (another inode) is not the one remembered.
	commitOne(t, s2, key, map[string]string{"a.txt": "other"})
	if r := s2.Check(key); !r.Complete || len(r.Manifest.Files) != 1 {
		t.Errorf("replaced object checked against the old entry: %+v", r)
	}
}

func TestTrustTableFormat(t *testing.T) {
	es := []*trustEntry{{sig: manifestSig{1, 2, 3, 4, 5}, key: "k", digest: "d", started: -7, ended: 8, host: "h",
		files: []FileEntry{{Path: "a", Size: 1, MtimeNs: 2, SHA256: "s", Link: "l"}, {Path: "b"}}}, {key: "k2"}}
	got, err := decodeTrust(encodeTrust(es))
	if err != nil {
		t.Fatal(err)
	}
	es[1].files = []FileEntry{}
	if !reflect.DeepEqual(got, es) {
		t.Errorf("round trip: %+v", got)
	}
	b := encodeTrust(es)
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		if _, err := decodeTrust(c); err == nil {
			t.Fatalf("a flipped byte at %d was accepted", i)
		}
	}
	if _, err := decodeTrust(b[:len(b)-1]); err == nil {
		t.Error("a truncated table was accepted")
	}
}

func FuzzDecodeTrust(f *testing.F) {
	f.Add(encodeTrust([]*trustEntry{{key: "k", files: []FileEntry{{Path: "a"}}}}))
	f.Add([]byte(trustMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := decodeTrust(b)
		if err == nil && len(es) > len(b) {
			t.Errorf("%d entries from %d bytes", len(es), len(b))
		}
	})
}
