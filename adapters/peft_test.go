package adapters

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/internal/safetensors"
	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

var tinyDims = modelgen.Dims{Layers: 2, Hidden: 64, QDim: 64, KVDim: 32, FFN: 192}

func TestConvertPEFTAllProjections(t *testing.T) {
	for _, dtype := range []string{"F32", "F16", "BF16"} {
		dir := t.TempDir()
		p := modelgen.RandomPEFT{Dims: tinyDims, Rank: 4, Alpha: 8, DType: dtype, Seed: 1, Scale: 0.1,
			Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}
		if err := p.Write(dir); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "a.gguf")
		info, err := ConvertPEFT(dir, out)
		if err != nil {
			t.Fatalf("%s: %v", dtype, err)
		}
		if info.Rank != 4 || info.Layers != 2 || len(info.TargetModules) != 7 {
			t.Fatalf("%s: %+v", dtype, info)
		}
		b, _ := os.ReadFile(out)
		if string(b[:4]) != "GGUF" || !strings.Contains(string(b), "blk.1.ffn_down.weight.lora_b") || !strings.Contains(string(b), "adapter.lora.alpha") {
			t.Fatalf("%s: output is not a GGUF LoRA", dtype)
		}
	}
}

func TestConvertPEFTRefusesUnsupported(t *testing.T) {
	base := modelgen.RandomPEFT{Dims: tinyDims, Rank: 2, Alpha: 4, DType: "F32", Seed: 2, Scale: 0.1, Targets: []string{"q_proj"}}
	cases := map[string]func(cfg map[string]any){
		"DoRA":            func(c map[string]any) { c["use_dora"] = true },
		"modules_to_save": func(c map[string]any) { c["modules_to_save"] = []string{"lm_head"} },
		"peft_type":       func(c map[string]any) { c["peft_type"] = "IA3" },
	}
	for want, mutate := range cases {
		dir := t.TempDir()
		if err := base.Write(dir); err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		b, _ := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
		json.Unmarshal(b, &cfg)
		mutate(cfg)
		b, _ = json.Marshal(cfg)
		os.WriteFile(filepath.Join(dir, "adapter_config.json"), b, 0o644)
		if _, err := ConvertPEFT(dir, filepath.Join(t.TempDir(), "x.gguf")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
	// an embedding target
	dir := t.TempDir()
	safetensors.Write(filepath.Join(dir, "adapter_model.safetensors"), []safetensors.Tensor{{Name: "base_model.model.model.embed_tokens.lora_embedding_A", DType: "F32", Shape: []int64{1, 1}, Data: make([]byte, 4)}})
	os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(`{"peft_type":"LORA","r":1,"lora_alpha":1}`), 0o644)
	if _, err := ConvertPEFT(dir, filepath.Join(t.TempDir(), "x.gguf")); err == nil || !strings.Contains(err.Error(), "embeddings") {
		t.Errorf("embedding target: %v", err)
	}
	if _, err := ConvertPEFT(t.TempDir(), "x.gguf"); err == nil || !strings.Contains(err.Error(), "not a PEFT adapter folder") {
		t.Errorf("empty folder: %v", err)
	}
}
