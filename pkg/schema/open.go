package schema

import (
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// GzipSuffix marks a compressed copy of a canonical CSV. Recorded runs in the
// repository keep their large token files gzipped to stay small; every
// reader here accepts either form, and Open prefers the plain file.
const GzipSuffix = ".gz"

// Open opens path, or path+".gz" decompressed when only that exists.
func Open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	gz, gerr := os.Open(path + GzipSuffix)
	if gerr != nil {
		return nil, err // report the canonical name, not the fallback
	}
	zr, zerr := gzip.NewReader(gz)
	if zerr != nil {
		gz.Close()
		return nil, &Error{File: gz.Name(), Msg: readFailure(zerr)}
	}
	return &gzipFile{Reader: zr, f: gz}, nil
}

// nameOf is the file r reads (path+".gz" for a gzipped copy), so errors
// name the file the user must repair.
func nameOf(r io.Reader, path string) string {
	if n, ok := r.(interface{ Name() string }); ok {
		return n.Name()
	}
	return path
}

// readFailure says what a failed read means: a gzip stream that ends early
// or does not match its checksum is a damaged file, not a bad row.
func readFailure(err error) string {
	var ce flate.CorruptInputError
	if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.As(err, &ce) {
		return fmt.Sprintf("cannot read (%v): the compressed file is damaged or cut short; restore it from where it came from, or record the run again", err)
	}
	return fmt.Sprintf("cannot read (%v)", err)
}

// Exists reports whether path, its gzipped copy or (for a .csv name) its
// Parquet form exists.
func Exists(path string) bool {
	if _, err := os.Stat(path); err == nil {
		return true
	}
	if _, err := os.Stat(path + GzipSuffix); err == nil {
		return true
	}
	return strings.HasSuffix(path, ".csv") && statExists(parquetPath(path))
}

// CopyPlain copies from (plain or gzipped, as Open finds it) to a plain file.
// A table stored as Parquet is copied as it is, to the Parquet name beside
// to: it is already the canonical form.
func CopyPlain(from, to string) error {
	if p, pq, err := TablePath(from); err == nil && pq && p != from {
		from, to = p, parquetPath(to)
		in, err := os.Open(from)
		if err != nil {
			return err
		}
		defer in.Close()
		return copyTo(in, from, to)
	}
	in, err := Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	return copyTo(in, from, to)
}

func copyTo(in io.Reader, from, to string) error {
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("copy %s: %w", nameOf(in, from), err)
		}
		return &Error{File: nameOf(in, from), Msg: readFailure(err)}
	}
	return out.Close()
}

type gzipFile struct {
	*gzip.Reader
	f *os.File
}

func (g *gzipFile) Name() string { return g.f.Name() }

func (g *gzipFile) Close() error {
	zerr := g.Reader.Close()
	if err := g.f.Close(); err != nil {
		return err
	}
	return zerr
}
