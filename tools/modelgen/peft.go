package modelgen

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/qwen3-lora/qwen3-server/internal/gguf"
	"github.com/qwen3-lora/qwen3-server/internal/safetensors"
)

// Dims are the projection sizes of a Qwen3 model.
type Dims struct {
	Layers, Hidden, QDim, KVDim, FFN int
}

// RandomPEFT describes a random LoRA adapter, written the way PEFT and
// LLaMA-Factory write one. Tests use it in place of a trained adapter.
type RandomPEFT struct {
	Dims    Dims
	Rank    int
	Alpha   float64
	Targets []string // q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj
	DType   string   // F32, F16, BF16
	Seed    uint64
	Scale   float32 // magnitude of the random values
	RSLoRA  bool
}

// Write creates dir with adapter_config.json and adapter_model.safetensors.
func (p RandomPEFT) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mods := map[string]string{"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
	d := p.Dims
	inOut := map[string][2]int{
		"q_proj": {d.Hidden, d.QDim}, "k_proj": {d.Hidden, d.KVDim}, "v_proj": {d.Hidden, d.KVDim}, "o_proj": {d.QDim, d.Hidden},
		"gate_proj": {d.Hidden, d.FFN}, "up_proj": {d.Hidden, d.FFN}, "down_proj": {d.FFN, d.Hidden},
	}
	r := rand.New(rand.NewPCG(p.Seed, 99))
	var tensors []safetensors.Tensor
	for l := 0; l < d.Layers; l++ {
		for _, t := range p.Targets {
			group, ok := mods[t]
			if !ok {
				return fmt.Errorf("unknown target %s", t)
			}
			io := inOut[t]
			base := fmt.Sprintf("base_model.model.model.layers.%d.%s.%s", l, group, t)
			tensors = append(tensors,
				randomTensor(base+".lora_A.weight", []int64{int64(p.Rank), int64(io[0])}, p.DType, p.Scale, r),
				randomTensor(base+".lora_B.weight", []int64{int64(io[1]), int64(p.Rank)}, p.DType, p.Scale, r))
		}
	}
	cfg := map[string]any{
		"peft_type": "LORA", "r": p.Rank, "lora_alpha": p.Alpha, "use_rslora": p.RSLoRA, "use_dora": false,
		"target_modules": p.Targets, "task_type": "CAUSAL_LM", "base_model_name_or_path": "Qwen/Qwen3-4B",
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), b, 0o644); err != nil {
		return err
	}
	return safetensors.Write(filepath.Join(dir, "adapter_model.safetensors"), tensors)
}

func randomTensor(name string, shape []int64, dtype string, scale float32, r *rand.Rand) safetensors.Tensor {
	n := shape[0] * shape[1]
	var data []byte
	switch dtype {
	case "F16":
		data = make([]byte, 2*n)
		for i := int64(0); i < n; i++ {
			binary.LittleEndian.PutUint16(data[2*i:], gguf.Float32ToF16((r.Float32()*2-1)*scale))
		}
	case "BF16":
		data = make([]byte, 2*n)
		for i := int64(0); i < n; i++ {
			binary.LittleEndian.PutUint16(data[2*i:], gguf.Float32ToBF16((r.Float32()*2-1)*scale))
		}
	default:
		dtype = "F32"
		data = make([]byte, 4*n)
		for i := int64(0); i < n; i++ {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits((r.Float32()*2-1)*scale))
		}
	}
	return safetensors.Tensor{Name: name, DType: dtype, Shape: shape, Data: data}
}
