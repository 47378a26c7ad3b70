package bench

import (
	"os"
	"testing"

	"github.com/qwen3-lora/qwen3-server/internal/gguf"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

// The generated models tie their embeddings: one decode step reads every
// tensor, so the bytes per token are the file's tensor data, from the first
// tensor's offset to the end. The chain model has its own output matrix, so
// its token embedding (only looked up) is left out.
func TestWeightBytesPerToken(t *testing.T) {
	for name, untied := range map[string]bool{"tiny-random.gguf": false, "tiny-chain.gguf": true} {
		path := testutil.Model(t, name)
		got, err := WeightBytesPerToken(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(path)
		first := uint64(st.Size())
		for _, ti := range f.Tensors {
			first = min(first, ti.Offset)
		}
		want := uint64(st.Size()) - first
		if untied {
			emb := f.Tensors["token_embd.weight"]
			want -= emb.Shape[0] * emb.Shape[1] * 2 // F16
		}
		// Alignment padding between tensors may differ by a few bytes each.
		if diff := int64(got) - int64(want); diff < -4096 || diff > 4096 {
			t.Errorf("%s: %d bytes per token, want about %d", name, got, want)
		}
	}
}
