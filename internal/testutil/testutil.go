// Package testutil finds the repository, the generated test models and the
// ggml backends for tests. Only tests import it.
package testutil

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot is the folder holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test's folder")
		}
		dir = parent
	}
}

// LibDir is the repository's lib/ollama, where `make cpu` (a step of `make
// test`) puts the CPU backend variants: engines in tests load them as the
// served binary does, so the tests run the code users run, at its speed.
// Callable from TestMain (no testing.TB there); "" if the root is not found.
func LibDir() string {
	root, err := repoRoot()
	if err != nil {
		return ""
	}
	return filepath.Join(root, "lib", "ollama")
}

// Model returns the path of a generated test model (tiny-random.gguf,
// tiny-chain.gguf). It fails the test when the model is missing: `make test`
// generates them first (make testdata), so a missing model is a broken
// set-up, not a reason to skip.
func Model(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "testdata", "models", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test model %s missing: run `make testdata` (or `make test`)", p)
	}
	return p
}

// LogSoftmax is the reference for logprob tests: the log-softmax of a
// logits row, in float64.
func LogSoftmax(logits []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	sum := 0.0
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	lse := mx + math.Log(sum)
	out := make([]float64, len(logits))
	for i, v := range logits {
		out[i] = float64(v) - lse
	}
	return out
}
