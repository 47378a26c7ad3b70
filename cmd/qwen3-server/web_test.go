package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/qwen3-lora/qwen3-server/internal/testutil"
	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

const chromium = "/usr/bin/chromium"

// TestWebPage drives the chat page in Debian's headless Chromium
// (tests/web/web.test.mjs, playwright-core) against two real servers: the
// chain model behind an API key (reasoning and answer, thinking switch,
// errors, the batches panel) and the random model with a LoRA adapter loaded (picker, compare
// mode, stop). Screenshots go to artifacts/web/.
func TestWebPage(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s not found: install Debian's chromium package (.ci/run does)", chromium)
	}
	chainAddr, chainLogs := startBinary(t, "--model", testutil.Model(t, "tiny-chain.gguf"), "--gpu-layers", "0",
		"--ctx-size", "256", "--parallel", "2", "--api-key", "test-key", "--batch-dir", t.TempDir())

	adapterDir := t.TempDir()
	peft := filepath.Join(adapterDir, "medical-lora")
	p := modelgen.RandomPEFT{Dims: modelgen.Dims{Layers: 2, Hidden: 64, QDim: 64, KVDim: 32, FFN: 192}, Rank: 8, Alpha: 16, DType: "BF16",
		Seed: 5, Scale: 0.5, Targets: []string{"q_proj", "v_proj", "down_proj"}}
	if err := p.Write(peft); err != nil {
		t.Fatal(err)
	}
	randAddr, randLogs := startBinary(t, "--model", testutil.Model(t, "tiny-random.gguf"), "--model-id", "qwen3-tiny", "--gpu-layers", "0",
		"--ctx-size", "4096", "--parallel", "4", "--adapter-dir", adapterDir)
	resp, err := http.Post("http://"+randAddr+"/v1/adapters", "application/json", bytes.NewBufferString(`{"name":"medical-lora","path":"`+peft+`"}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("loading the adapter: %v %v", resp, err)
	}
	resp.Body.Close()
	defer func() {
		if t.Failed() {
			t.Logf("chain server log:\n%s\nrandom server log:\n%s", chainLogs.String(), randLogs.String())
		}
	}()

	shots := filepath.Join(testutil.RepoRoot(t), "artifacts", "web")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", nodeTest(t, "web", "web.test.mjs", "playwright-core",
		"CHAIN_URL=http://"+chainAddr, "RANDOM_URL=http://"+randAddr, "API_KEY=test-key",
		"CHROMIUM="+chromium, "SCREENSHOTS="+shots))
}
