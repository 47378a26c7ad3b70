package convert

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/engine/scheduler"
	"github.com/qwen3-lora/qwen3-server/internal/gguf"
	"github.com/qwen3-lora/qwen3-server/internal/safetensors"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

// exportHF writes a GGUF model as a Hugging Face checkpoint (the inverse of
// the conversion), so that the conversion can be checked round trip.
func exportHF(t *testing.T, src, dir string) {
	t.Helper()
	g, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(src)
	defer f.Close()
	inverse := map[string]string{}
	for hf := range layerMap {
		inverse[layerMap[hf]] = hf
	}
	var tensors []safetensors.Tensor
	for _, name := range g.Order {
		ti := g.Tensors[name]
		var hf string
		switch name {
		case "token_embd.weight":
			hf = "model.embed_tokens.weight"
		case "output_norm.weight":
			hf = "model.norm.weight"
		case "output.weight":
			hf = "lm_head.weight"
		default:
			parts := strings.SplitN(name, ".", 3) // blk, N, rest
			hf = "model.layers." + parts[1] + "." + inverse[parts[2]]
		}
		n := uint64(1)
		shape := make([]int64, len(ti.Shape))
		for i, d := range ti.Shape {
			n *= d
			shape[len(ti.Shape)-1-i] = int64(d)
		}
		data := make([]byte, n*uint64(ti.Type.BytesPerElement()))
		if _, err := f.ReadAt(data, int64(ti.Offset)); err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, safetensors.Tensor{Name: hf, DType: ti.Type.String(), Shape: shape, Data: data})
	}
	os.MkdirAll(dir, 0o755)
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), tensors); err != nil {
		t.Fatal(err)
	}
	u := func(k string) uint32 { return g.Meta["qwen3."+k].(uint32) }
	cfg := map[string]any{
		"architectures": []string{"Qwen3ForCausalLM"}, "hidden_size": u("embedding_length"), "intermediate_size": u("feed_forward_length"),
		"num_hidden_layers": u("block_count"), "num_attention_heads": u("attention.head_count"), "num_key_value_heads": u("attention.head_count_kv"),
		"head_dim": u("attention.key_length"), "rms_norm_eps": 1e-6, "rope_theta": 1000000, "max_position_embeddings": u("context_length"),
		"vocab_size": 151936, "tie_word_embeddings": g.Tensors["output.weight"].Name == "", "torch_dtype": "float16",
	}
	b, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
	for _, fn := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "testdata", "cache", "tokenizer", fn))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, fn), b, 0o644)
	}
}

func greedyTokens(t *testing.T, model string) []int32 {
	t.Helper()
	e, err := scheduler.New(scheduler.Options{ModelPath: model, LibDir: testutil.LibDir(), GPULayers: 0, ContextSize: 128, Parallel: 1, Threads: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var toks []int32
	_, err = e.Generate(context.Background(), &engine.Request{Prompt: "Round trip through safetensors", MaxTokens: 16, IgnoreEOS: true}, func(c engine.Chunk) error {
		toks = append(toks, c.Token)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

func TestRoundTripThroughHuggingFaceFormat(t *testing.T) {
	llamacpp.SetLogger(nil)
	for _, name := range []string{"tiny-random.gguf", "tiny-chain.gguf"} { // tied and untied output
		src := testutil.Model(t, name)
		dir := filepath.Join(t.TempDir(), "hf")
		exportHF(t, src, dir)
		out := filepath.Join(t.TempDir(), "converted.gguf")
		if err := Qwen3(dir, out, nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		a, b := greedyTokens(t, src), greedyTokens(t, out)
		if len(a) != 16 || len(b) != 16 {
			t.Fatalf("%s: generated %d and %d tokens", name, len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: converted model differs: %v vs %v", name, b, a)
			}
		}
	}
	if err := Qwen3(t.TempDir(), filepath.Join(t.TempDir(), "x.gguf"), nil); err == nil || !strings.Contains(err.Error(), "not a Hugging Face checkpoint") {
		t.Fatalf("empty folder: %v", err)
	}
}
