// Package convert turns a Hugging Face Qwen3 checkpoint (config.json,
// *.safetensors, tokenizer.json and tokenizer_config.json — what
// LLaMA-Factory's merged export writes) into a GGUF llama.cpp loads, in Go.
//
// Offline tooling (tools/): nothing on the serving path imports it.
package convert

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"github.com/qwen3-lora/qwen3-server/internal/gguf"
	"github.com/qwen3-lora/qwen3-server/internal/safetensors"
	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

// Config is the part of config.json the conversion needs.
type Config struct {
	Architectures     []string `json:"architectures"`
	HiddenSize        int      `json:"hidden_size"`
	IntermediateSize  int      `json:"intermediate_size"`
	NumLayers         int      `json:"num_hidden_layers"`
	NumHeads          int      `json:"num_attention_heads"`
	NumKVHeads        int      `json:"num_key_value_heads"`
	HeadDim           int      `json:"head_dim"`
	RMSNormEps        float64  `json:"rms_norm_eps"`
	RopeTheta         float64  `json:"rope_theta"`
	MaxPositions      int      `json:"max_position_embeddings"`
	VocabSize         int      `json:"vocab_size"`
	TieWordEmbeddings bool     `json:"tie_word_embeddings"`
	TorchDType        string   `json:"torch_dtype"`
}

var layerName = regexp.MustCompile(`^model\.layers\.(\d+)\.(.+)$`)

var layerMap = map[string]string{
	"input_layernorm.weight":          "attn_norm.weight",
	"post_attention_layernorm.weight": "ffn_norm.weight",
	"self_attn.q_proj.weight":         "attn_q.weight",
	"self_attn.k_proj.weight":         "attn_k.weight",
	"self_attn.v_proj.weight":         "attn_v.weight",
	"self_attn.o_proj.weight":         "attn_output.weight",
	"self_attn.q_norm.weight":         "attn_q_norm.weight",
	"self_attn.k_norm.weight":         "attn_k_norm.weight",
	"mlp.gate_proj.weight":            "ffn_gate.weight",
	"mlp.up_proj.weight":              "ffn_up.weight",
	"mlp.down_proj.weight":            "ffn_down.weight",
}

// ggufName maps a Hugging Face tensor name to llama.cpp's.
func ggufName(hf string) (string, error) {
	switch hf {
	case "model.embed_tokens.weight":
		return "token_embd.weight", nil
	case "model.norm.weight":
		return "output_norm.weight", nil
	case "lm_head.weight":
		return "output.weight", nil
	}
	if m := layerName.FindStringSubmatch(hf); m != nil {
		if g, ok := layerMap[m[2]]; ok {
			return "blk." + m[1] + "." + g, nil
		}
	}
	return "", fmt.Errorf("tensor %s is not part of a Qwen3 model", hf)
}

// Qwen3 converts the checkpoint in dir to out. Weight matrices keep their
// type (F32, F16 or BF16); norms become F32 as llama.cpp expects.
func Qwen3(dir, out string, progress func(done, total uint64)) error {
	var cfg Config
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return fmt.Errorf("not a Hugging Face checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("config.json: %w", err)
	}
	if len(cfg.Architectures) == 0 || cfg.Architectures[0] != "Qwen3ForCausalLM" {
		return fmt.Errorf("config.json: architecture %v, want Qwen3ForCausalLM", cfg.Architectures)
	}
	if cfg.HeadDim == 0 && cfg.NumHeads > 0 {
		cfg.HeadDim = cfg.HiddenSize / cfg.NumHeads
	}
	vocab, err := modelgen.LoadVocab(dir, cfg.VocabSize)
	if err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if len(files) == 0 {
		return fmt.Errorf("%s: no .safetensors files", dir)
	}
	sort.Strings(files)
	var tensors []safetensors.Tensor
	for _, f := range files {
		ts, err := safetensors.Read(f)
		if err != nil {
			return err
		}
		tensors = append(tensors, ts...)
	}
	wtype := gguf.F16
	byName := map[string]*safetensors.Tensor{}
	for i := range tensors {
		byName[tensors[i].Name] = &tensors[i]
		if tensors[i].DType == "BF16" {
			wtype = gguf.BF16
		} else if tensors[i].DType == "F32" && wtype != gguf.BF16 {
			wtype = gguf.F32
		}
	}
	shape := modelgen.Shape{Name: "converted", Layers: cfg.NumLayers, Hidden: cfg.HiddenSize, FFN: cfg.IntermediateSize,
		Heads: cfg.NumHeads, KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim, Vocab: cfg.VocabSize, ContextLen: cfg.MaxPositions, Type: wtype}
	var w gguf.Writer
	modelgen.SetMetadata(&w, shape, vocab, filepath.Base(filepath.Clean(dir)), float32(cfg.RMSNormEps), float32(cfg.RopeTheta))
	// llama.cpp's order: embeddings, blocks in order, output norm, output.
	order := []string{"model.embed_tokens.weight"}
	for l := 0; l < cfg.NumLayers; l++ {
		for _, k := range []string{"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
			"self_attn.o_proj.weight", "self_attn.q_norm.weight", "self_attn.k_norm.weight", "post_attention_layernorm.weight",
			"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"} {
			order = append(order, "model.layers."+strconv.Itoa(l)+"."+k)
		}
	}
	order = append(order, "model.norm.weight")
	if !cfg.TieWordEmbeddings {
		order = append(order, "lm_head.weight")
	}
	used := map[string]bool{}
	for _, hf := range order {
		t, ok := byName[hf]
		if !ok {
			return fmt.Errorf("checkpoint lacks %s", hf)
		}
		used[hf] = true
		name, _ := ggufName(hf)
		gt, err := toGGUF(name, t)
		if err != nil {
			return err
		}
		w.Add(gt)
	}
	for _, t := range tensors {
		if !used[t.Name] && !(cfg.TieWordEmbeddings && t.Name == "lm_head.weight") {
			if _, err := ggufName(t.Name); err != nil {
				return err
			}
		}
	}
	return w.WriteFile(out, progress)
}

// toGGUF reverses the shape (torch [out, in] is ggml ne [in, out]; the
// bytes carry over) and makes 1-D norm weights F32.
func toGGUF(name string, t *safetensors.Tensor) (gguf.Tensor, error) {
	shape := make([]uint64, len(t.Shape))
	for i, d := range t.Shape {
		shape[len(t.Shape)-1-i] = uint64(d)
	}
	typ := map[string]gguf.TensorType{"F32": gguf.F32, "F16": gguf.F16, "BF16": gguf.BF16}[t.DType]
	data := t.Data
	if len(shape) == 1 && typ != gguf.F32 {
		f32 := make([]byte, 2*len(data))
		for i := 0; i < len(data)/2; i++ {
			h := binary.LittleEndian.Uint16(data[2*i:])
			v := gguf.F16ToFloat32(h)
			if typ == gguf.BF16 {
				v = gguf.BF16ToFloat32(h)
			}
			binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(v))
		}
		data, typ = f32, gguf.F32
	}
	return gguf.Tensor{Name: name, Shape: shape, Type: typ, Fill: func(w io.Writer) error { _, err := w.Write(data); return err }}, nil
}
