package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReproducible regenerates every vector file into a temporary directory
// and requires the committed spec/vectors to match byte for byte, and to
// hold no generated-looking file the generator no longer writes.
func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	if err := generate(dir); err != nil {
		t.Fatal(err)
	}
	committed := filepath.Join("..", "..", "spec", "vectors")
	for _, name := range Files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(committed, name))
		if err != nil {
			t.Fatalf("%s is not committed: run go run ./cmd/plvectors -out spec/vectors", name)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("spec/vectors/%s differs from the generator's output: run go run ./cmd/plvectors -out spec/vectors and review the diff", name)
		}
	}
	entries, err := os.ReadDir(committed)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") && !slices.Contains(Files, e.Name()) {
			t.Errorf("spec/vectors/%s is not written by the generator", e.Name())
		}
	}
}

func TestStreamIsDeterministic(t *testing.T) {
	a, b := newStream("x"), newStream("x")
	if !bytes.Equal(a.bytes(100), b.bytes(100)) || bytes.Equal(newStream("y").bytes(32), newStream("x").bytes(32)) {
		t.Fatal("stream is not a deterministic function of its label")
	}
}
