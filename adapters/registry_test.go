package adapters

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

type nopAdapter struct{ closed *int }

func (a nopAdapter) Close() { *a.closed++ }

type countingLoader struct{ closed int }

func (l *countingLoader) LoadAdapter(string) (engine.Adapter, error) {
	return nopAdapter{&l.closed}, nil
}

func TestScanFindsNewAdapters(t *testing.T) {
	root := t.TempDir()
	l := &countingLoader{}
	r, err := NewRegistry(l, []string{root}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Scan(); len(got) != 0 {
		t.Fatalf("empty folder: %v", got)
	}
	p := modelgen.RandomPEFT{Dims: tinyDims, Rank: 2, Alpha: 4, DType: "F32", Seed: 1, Scale: 0.1, Targets: []string{"q_proj"}}
	if err := p.Write(filepath.Join(root, "medical")); err != nil {
		t.Fatal(err)
	}
	if _, err := ConvertPEFT(filepath.Join(root, "medical"), filepath.Join(root, "chat.gguf")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "notes.txt"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(root, "half-copied"), 0o755) // no safetensors yet
	got := r.Scan()
	sort.Strings(got)
	if strings.Join(got, ",") != "chat,medical" {
		t.Fatalf("scan loaded %v", got)
	}
	if again := r.Scan(); len(again) != 0 {
		t.Fatalf("second scan reloaded %v", again)
	}
	// in-flight requests keep an unloaded adapter alive
	_, _, release, err := r.Acquire("chat", -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Unload("chat"); err != nil {
		t.Fatal(err)
	}
	if l.closed != 0 {
		t.Fatal("closed while a request used it")
	}
	release()
	if l.closed != 1 {
		t.Fatalf("closed %d times after the last release", l.closed)
	}
}
