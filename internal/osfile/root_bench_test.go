package osfile

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkOpen compares an open through a Root with a plain os.Open of
// the same regular file.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "a", "b")
	os.MkdirAll(filepath.Dir(path), 0o700)
	os.WriteFile(path, []byte("x"), 0o600)
	r, err := OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.Run("root", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := r.OpenFile(path, os.O_RDONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("os", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
}
