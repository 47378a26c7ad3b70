package bench

import (
	"os"
	"sort"

	"github.com/qwen3-lora/qwen3-server/internal/gguf"
)

// WeightBytesPerToken is what one decode step of one sequence reads from
// the model file: every tensor, except that the token embedding matrix is
// only looked up (one row) when the model has its own output matrix; with
// tied embeddings (Qwen3 up to 4B, and the generated models) it is the
// output projection and read whole. Sizes come from the tensors' offsets, so
// any quantization counts right.
func WeightBytesPerToken(path string) (uint64, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	ts := make([]gguf.TensorInfo, 0, len(f.Tensors))
	for _, t := range f.Tensors {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Offset < ts[j].Offset })
	_, untied := f.Tensors["output.weight"]
	var total uint64
	for i, t := range ts {
		end := uint64(st.Size())
		if i+1 < len(ts) {
			end = ts[i+1].Offset
		}
		if t.Name == "token_embd.weight" && untied {
			continue
		}
		total += end - t.Offset
	}
	return total, nil
}
