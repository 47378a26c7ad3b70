// Package adapters handles LoRA adapters: PEFT folders as LLaMA-Factory and
// PEFT write them (adapter_config.json + adapter_model.safetensors),
// converted natively to llama.cpp's GGUF LoRA format, and GGUF LoRA files;
// the run-time registry (load, reference counts, LRU eviction, folder
// watch) and adapter manifests. It loads through engine.AdapterLoader and
// must not import an engine implementation or the HTTP server.
package adapters

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
	"strings"

	"github.com/qwen3-lora/qwen3-server/internal/gguf"
	"github.com/qwen3-lora/qwen3-server/internal/safetensors"
)

// PEFTConfig is the part of adapter_config.json that matters here.
type PEFTConfig struct {
	PeftType      string          `json:"peft_type"`
	R             int             `json:"r"`
	LoraAlpha     float64         `json:"lora_alpha"`
	UseRSLoRA     bool            `json:"use_rslora"`
	UseDoRA       bool            `json:"use_dora"`
	TargetModules json.RawMessage `json:"target_modules"`
	ModulesToSave []string        `json:"modules_to_save"`
	BaseModel     string          `json:"base_model_name_or_path"`
	RankPattern   map[string]int  `json:"rank_pattern"`
	AlphaPattern  map[string]any  `json:"alpha_pattern"`
}

// projection maps Hugging Face Qwen3 module names to GGUF tensor names.
var projection = map[string]string{
	"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
	"mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}

var peftName = regexp.MustCompile(`^(?:base_model\.model\.)?model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])(?:\.default)?\.weight$`)

// Info describes an adapter.
type Info struct {
	Rank          int
	Alpha         float64
	RSLoRA        bool
	TargetModules []string // GGUF names: attn_q, ffn_down, …
	Layers        int      // highest layer index + 1
	BaseModel     string
}

// ConvertPEFT converts a PEFT LoRA folder to a GGUF LoRA file for the
// qwen3 architecture. Unsupported features get a clear error rather than a
// silently different model.
func ConvertPEFT(dir, out string) (*Info, error) {
	var cfg PEFTConfig
	b, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		return nil, fmt.Errorf("not a PEFT adapter folder: %w", err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("adapter_config.json: %w", err)
	}
	switch {
	case cfg.PeftType != "" && !strings.EqualFold(cfg.PeftType, "LORA"):
		return nil, fmt.Errorf("peft_type %s is not supported (LORA only)", cfg.PeftType)
	case cfg.UseDoRA:
		return nil, fmt.Errorf("DoRA adapters (use_dora) are not supported by llama.cpp; merge it into the base instead")
	case len(cfg.ModulesToSave) > 0:
		return nil, fmt.Errorf("modules_to_save %v is not supported: those modules are full weights, not LoRA; merge the adapter instead", cfg.ModulesToSave)
	case cfg.R <= 0:
		return nil, fmt.Errorf("adapter_config.json: r must be positive")
	case len(cfg.RankPattern) > 0 || len(cfg.AlphaPattern) > 0:
		return nil, fmt.Errorf("rank_pattern/alpha_pattern (per-module ranks) are not supported")
	}
	tensors, err := safetensors.Read(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		return nil, err
	}
	type pair struct{ a, b *safetensors.Tensor }
	pairs := map[string]*pair{}
	targets := map[string]bool{}
	layers := 0
	for i := range tensors {
		t := &tensors[i]
		m := peftName.FindStringSubmatch(t.Name)
		if m == nil {
			if strings.Contains(t.Name, "embed_tokens") || strings.Contains(t.Name, "lm_head") {
				return nil, fmt.Errorf("tensor %s: adapters on embeddings or lm_head are not supported", t.Name)
			}
			return nil, fmt.Errorf("tensor %s: not a LoRA weight of a Qwen3 projection (q, k, v, o, gate, up, down)", t.Name)
		}
		layer, _ := strconv.Atoi(m[1])
		layers = max(layers, layer+1)
		name := fmt.Sprintf("blk.%d.%s.weight", layer, projection[m[2]])
		targets[projection[m[2]]] = true
		p := pairs[name]
		if p == nil {
			p = &pair{}
			pairs[name] = p
		}
		if m[3] == "A" {
			p.a = t
		} else {
			p.b = t
		}
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("adapter_model.safetensors holds no LoRA weights")
	}
	// PEFT scales by alpha/r (alpha/sqrt(r) with rsLoRA); llama.cpp by
	// alpha/rank, so rsLoRA is expressed through an adjusted alpha.
	alpha := cfg.LoraAlpha
	if cfg.UseRSLoRA {
		alpha = cfg.LoraAlpha * math.Sqrt(float64(cfg.R))
	}
	var w gguf.Writer
	w.Set("general.architecture", "qwen3")
	w.Set("general.type", "adapter")
	w.Set("adapter.type", "lora")
	w.Set("adapter.lora.alpha", float32(alpha))
	names := make([]string, 0, len(pairs))
	for n := range pairs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := pairs[n]
		if p.a == nil || p.b == nil {
			return nil, fmt.Errorf("%s: lora_A or lora_B missing", n)
		}
		if len(p.a.Shape) != 2 || len(p.b.Shape) != 2 || p.a.Shape[0] != p.b.Shape[1] || p.a.Shape[0] != int64(cfg.R) {
			return nil, fmt.Errorf("%s: lora_A %v and lora_B %v do not fit rank %d", n, p.a.Shape, p.b.Shape, cfg.R)
		}
		// torch [r, in] row-major is ggml ne = [in, r]: the bytes carry over.
		w.Add(tensorFrom(n+".lora_a", p.a))
		w.Add(tensorFrom(n+".lora_b", p.b))
	}
	if err := w.WriteFile(out, nil); err != nil {
		return nil, err
	}
	var tl []string
	for t := range targets {
		tl = append(tl, t)
	}
	sort.Strings(tl)
	return &Info{Rank: cfg.R, Alpha: cfg.LoraAlpha, RSLoRA: cfg.UseRSLoRA, TargetModules: tl, Layers: layers, BaseModel: cfg.BaseModel}, nil
}

// tensorFrom turns a safetensors tensor into a GGUF one; BF16 becomes F32
// (exact), F16 and F32 are copied.
func tensorFrom(name string, t *safetensors.Tensor) gguf.Tensor {
	shape := []uint64{uint64(t.Shape[1]), uint64(t.Shape[0])}
	switch t.DType {
	case "F16":
		return gguf.Tensor{Name: name, Shape: shape, Type: gguf.F16, Fill: writeBytes(t.Data)}
	case "BF16":
		out := make([]byte, len(t.Data)*2)
		for i := 0; i < len(t.Data)/2; i++ {
			f := gguf.BF16ToFloat32(binary.LittleEndian.Uint16(t.Data[2*i:]))
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
		}
		return gguf.Tensor{Name: name, Shape: shape, Type: gguf.F32, Fill: writeBytes(out)}
	}
	return gguf.Tensor{Name: name, Shape: shape, Type: gguf.F32, Fill: writeBytes(t.Data)}
}

func writeBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error { _, err := w.Write(b); return err }
}
