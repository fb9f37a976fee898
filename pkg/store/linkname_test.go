package store

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestLinkName(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"report", "report"},
		{"compare[rate=2]", "compare.rate@2"},
		{"compare[rate=0.5]", "compare.rate@0.5"},
		{"sim[model=Qwen/Qwen3-0.6B,rate=4]", "sim.model@Qwen+2FQwen3-0.6B,rate@4"},
		{"w[x=a b]", "w.x@a+20b"},
		{"w[x=@+%]", "w.x@+40+2B+25"},
		{"odd[x", "odd+5Bx"},
		{"a.b", "a+2Eb"},
	} {
		if got := LinkName(tc.id); got != tc.want {
			t.Errorf("LinkName(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

// Names need no quoting in a shell and no escaping in a URL path, and two
// ids never share a name.
func TestLinkNameIsSafeAndOneToOne(t *testing.T) {
	safe := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._,@+-]*$`)
	ids := []string{"report", "compare[rate=2]", "compare[rate=2.0]", "compare[rate=20]",
		"c[a=1,b=2]", "c[a=1,b@2]", "c[a=1.b=2]", "c[a=1+2B]", "c[a=1+]", "c[a=1+2B+]",
		"c[a=1@2]", "c[a=1=2]", "c[a=x/y]", "c[a=x%2Fy]", "c[a=x+2Fy]", "c.a@1", "c[a=]", "c",
		"c[]", "c[a=[1,2]]", "c[a=[1],b=2]", "s_1[v-x=3]", "s-1[v_x=3]"}
	seen := map[string]string{}
	for _, id := range ids {
		n := LinkName(id)
		if !safe.MatchString(n) {
			t.Errorf("LinkName(%q) = %q has characters a shell or a URL would need quoted", id, n)
		}
		// RFC 3986 pchar: unreserved, sub-delims, ':' and '@' stand as
		// they are in a path segment; PathEscape is stricter only about ','.
		if u := strings.ReplaceAll(url.PathEscape(n), "%2C", ","); u != n {
			t.Errorf("LinkName(%q) = %q changes under URL path escaping: %q", id, n, u)
		}
		if other, dup := seen[n]; dup {
			t.Errorf("%q and %q both link as %q", id, other, n)
		}
		seen[n] = id
	}
}

// A store whose links an older gsim named by the raw id keeps working: the
// old link is read, and replaced by the new name on the next link.
func TestLegacyLinkNames(t *testing.T) {
	s, _ := Open(t.TempDir())
	commitOne(t, s, "k1", map[string]string{"a": "1"})
	commitOne(t, s, "k2", map[string]string{"a": "2"})
	id := "m[model=Qwen/Qwen3,rate=2]"
	old := filepath.Join(s.LinkDir("exp"), "m[model=Qwen%2FQwen3,rate=2]")
	os.MkdirAll(s.LinkDir("exp"), 0o755)
	if err := os.Symlink(filepath.Join("..", "..", "objects", "k1"), old); err != nil {
		t.Fatal(err)
	}
	if k, ok := s.Linked("exp", id); !ok || k != "k1" {
		t.Fatalf("legacy link not read: %q %v", k, ok)
	}
	if err := s.Link("exp", id, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(old); !os.IsNotExist(err) {
		t.Errorf("legacy link kept beside the new one: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(s.LinkDir("exp"), "m.model@Qwen+2FQwen3,rate@2", "a")); err != nil || string(b) != "1" {
		t.Errorf("new link does not reach k1: %q %v", b, err)
	}
	if err := s.Link("exp", id, "k2"); err != nil {
		t.Fatal(err)
	}
	if k, ok := s.Linked("exp", id); !ok || k != "k2" {
		t.Fatalf("linked = %q %v, want k2", k, ok)
	}
}
