package modelgen

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"runtime"
	"sync"

	"github.com/qwen3-lora/qwen3-server/internal/gguf"
)

// Shape is a Qwen3 architecture size.
type Shape struct {
	Name       string
	Layers     int
	Hidden     int
	FFN        int
	Heads      int
	KVHeads    int
	HeadDim    int
	Vocab      int
	ContextLen int
	Type       gguf.TensorType // weight matrices; norms are always F32
}

// Shapes the generator knows. qwen3-4b is the exact Qwen3-4B shape
// (config.json of Qwen/Qwen3-4B); tiny keeps the real vocabulary but is small
// enough (< 50 MB) for CI; small (about 100M parameters, 206 MB in F16) is
// large enough that CPU decoding is bound by memory bandwidth, as with real
// models, and small enough to measure on a 2-core machine.
var Shapes = map[string]Shape{
	"tiny":     {Name: "tiny", Layers: 2, Hidden: 64, FFN: 192, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 151936, ContextLen: 40960, Type: gguf.F16},
	"small":    {Name: "small", Layers: 8, Hidden: 512, FFN: 1536, Heads: 8, KVHeads: 4, HeadDim: 64, Vocab: 151936, ContextLen: 40960, Type: gguf.F16},
	"qwen3-4b": {Name: "qwen3-4b", Layers: 36, Hidden: 2560, FFN: 9728, Heads: 32, KVHeads: 8, HeadDim: 128, Vocab: 151936, ContextLen: 40960, Type: gguf.F16},
}

// Options select what to generate.
type Options struct {
	Shape Shape
	Vocab *Vocab
	Seed  uint64
	// Chain, when set, makes a deterministic test model instead of a random
	// one: every layer's weights are zero (so each block passes the residual
	// through unchanged), the output matrix is untied, and token Chain[k]
	// predicts Chain[k+1] with a logit margin large enough that any sampler
	// picks it. The tokens must be distinct and fewer than Shape.Hidden.
	Chain []int
}

// Write generates the model into path. progress may be nil.
func Write(path string, o Options, progress func(done, total uint64)) error {
	s := o.Shape
	if o.Vocab == nil || len(o.Vocab.Tokens) != s.Vocab {
		return fmt.Errorf("modelgen: vocabulary must have %d tokens", s.Vocab)
	}
	if len(o.Chain) > 0 {
		if len(o.Chain) >= s.Hidden {
			return fmt.Errorf("modelgen: chain of %d tokens needs hidden size > %d", len(o.Chain), len(o.Chain))
		}
		seen := map[int]bool{}
		for _, t := range o.Chain {
			if t < 0 || t >= s.Vocab || seen[t] {
				return fmt.Errorf("modelgen: chain tokens must be distinct and inside the vocabulary (%d)", t)
			}
			seen[t] = true
		}
	}
	var w gguf.Writer
	name := "qwen3-" + s.Name + "-random"
	if len(o.Chain) > 0 {
		name = "qwen3-" + s.Name + "-chain"
	}
	SetMetadata(&w, s, o.Vocab, name, 1e-6, 1000000)

	g := &gen{seed: o.Seed, zero: len(o.Chain) > 0}
	h, q, kv := uint64(s.Hidden), uint64(s.Heads*s.HeadDim), uint64(s.KVHeads*s.HeadDim)
	ffn, vocab := uint64(s.FFN), uint64(s.Vocab)
	embScale := float32(0.05)
	if len(o.Chain) > 0 {
		w.Add(gguf.Tensor{Name: "token_embd.weight", Shape: []uint64{h, vocab}, Type: s.Type, Fill: chainEmbedding(o.Chain, s)})
	} else {
		w.Add(g.random("token_embd.weight", []uint64{h, vocab}, s.Type, embScale))
	}
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		w.Add(ones(p+"attn_norm.weight", h))
		w.Add(g.matrix(p+"attn_q.weight", []uint64{h, q}, s.Type))
		w.Add(g.matrix(p+"attn_k.weight", []uint64{h, kv}, s.Type))
		w.Add(g.matrix(p+"attn_v.weight", []uint64{h, kv}, s.Type))
		w.Add(g.matrix(p+"attn_output.weight", []uint64{q, h}, s.Type))
		w.Add(ones(p+"attn_q_norm.weight", uint64(s.HeadDim)))
		w.Add(ones(p+"attn_k_norm.weight", uint64(s.HeadDim)))
		w.Add(ones(p+"ffn_norm.weight", h))
		w.Add(g.matrix(p+"ffn_gate.weight", []uint64{h, ffn}, s.Type))
		w.Add(g.matrix(p+"ffn_up.weight", []uint64{h, ffn}, s.Type))
		w.Add(g.matrix(p+"ffn_down.weight", []uint64{ffn, h}, s.Type))
	}
	w.Add(ones("output_norm.weight", h))
	if len(o.Chain) > 0 {
		w.Add(gguf.Tensor{Name: "output.weight", Shape: []uint64{h, vocab}, Type: s.Type, Fill: chainOutput(o.Chain, s)})
	}
	return w.WriteFile(path, progress)
}

// SetMetadata writes the qwen3 architecture and tokenizer keys llama.cpp
// reads (the same set convert_hf_to_gguf.py writes for Qwen3).
func SetMetadata(w *gguf.Writer, s Shape, v *Vocab, name string, rmsEps, ropeTheta float32) {
	const arch = "qwen3"
	w.Set("general.architecture", arch)
	w.Set("general.name", name)
	w.Set("general.file_type", uint32(s.Type)) // 0 = all F32, 1 = mostly F16, 32 = mostly BF16
	w.Set(arch+".context_length", uint32(s.ContextLen))
	w.Set(arch+".embedding_length", uint32(s.Hidden))
	w.Set(arch+".block_count", uint32(s.Layers))
	w.Set(arch+".feed_forward_length", uint32(s.FFN))
	w.Set(arch+".attention.head_count", uint32(s.Heads))
	w.Set(arch+".attention.head_count_kv", uint32(s.KVHeads))
	w.Set(arch+".attention.key_length", uint32(s.HeadDim))
	w.Set(arch+".attention.value_length", uint32(s.HeadDim))
	w.Set(arch+".rope.freq_base", ropeTheta)
	w.Set(arch+".attention.layer_norm_rms_epsilon", rmsEps)
	w.Set("tokenizer.ggml.model", "gpt2")
	w.Set("tokenizer.ggml.pre", "qwen2")
	w.Set("tokenizer.ggml.tokens", v.Tokens)
	w.Set("tokenizer.ggml.token_type", v.Types)
	w.Set("tokenizer.ggml.merges", v.Merges)
	w.Set("tokenizer.ggml.eos_token_id", uint32(v.EOS))
	w.Set("tokenizer.ggml.padding_token_id", uint32(v.PAD))
	w.Set("tokenizer.ggml.bos_token_id", uint32(v.PAD))
	w.Set("tokenizer.ggml.add_bos_token", false)
	w.Set("tokenizer.chat_template", v.ChatTemplate)
}

type gen struct {
	seed uint64
	zero bool
}

// matrix is a layer weight: random with scale 1/sqrt(fan-in), or zero in a
// chain model.
func (g *gen) matrix(name string, shape []uint64, t gguf.TensorType) gguf.Tensor {
	if g.zero {
		return gguf.Tensor{Name: name, Shape: shape, Type: t, Fill: func(w io.Writer) error {
			return writeZeros(w, gguf.Tensor{Shape: shape, Type: t}.Size())
		}}
	}
	return g.random(name, shape, t, float32(1/math.Sqrt(float64(shape[0]))))
}

// random fills a tensor with uniform values in [-scale, scale), generated in
// parallel from a per-tensor seed so the output is deterministic.
func (g *gen) random(name string, shape []uint64, t gguf.TensorType, scale float32) gguf.Tensor {
	tensor := gguf.Tensor{Name: name, Shape: shape, Type: t}
	h := fnv.New64a()
	h.Write([]byte(name))
	base := h.Sum64() ^ g.seed
	tensor.Fill = func(w io.Writer) error {
		n := tensor.Elements()
		bpe := uint64(t.BytesPerElement())
		buf := make([]byte, n*bpe)
		workers := uint64(runtime.NumCPU())
		per := (n + workers - 1) / workers
		var wg sync.WaitGroup
		for i := uint64(0); i < workers; i++ {
			lo, hi := i*per, min((i+1)*per, n)
			if lo >= hi {
				break
			}
			wg.Add(1)
			go func(part uint64) {
				defer wg.Done()
				state := base + part*0x9E3779B97F4A7C15
				for j := lo; j < hi; j++ {
					state += 0x9E3779B97F4A7C15
					z := state
					z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
					z = (z ^ (z >> 27)) * 0x94D049BB133111EB
					z ^= z >> 31
					v := (float32(z>>40)/float32(1<<24)*2 - 1) * scale
					putValue(buf[j*bpe:], t, v)
				}
			}(i)
		}
		wg.Wait()
		_, err := w.Write(buf)
		return err
	}
	return tensor
}

func putValue(b []byte, t gguf.TensorType, v float32) {
	switch t {
	case gguf.F32:
		binary.LittleEndian.PutUint32(b, math.Float32bits(v))
	case gguf.F16:
		binary.LittleEndian.PutUint16(b, gguf.Float32ToF16(v))
	case gguf.BF16:
		binary.LittleEndian.PutUint16(b, gguf.Float32ToBF16(v))
	}
}

func ones(name string, n uint64) gguf.Tensor {
	return gguf.Tensor{Name: name, Shape: []uint64{n}, Type: gguf.F32, Fill: func(w io.Writer) error {
		b := make([]byte, 4*n)
		for i := uint64(0); i < n; i++ {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(1))
		}
		_, err := w.Write(b)
		return err
	}}
}

func writeZeros(w io.Writer, n uint64) error {
	zero := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, uint64(len(zero)))
		if _, err := w.Write(zero[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// chainEmbedding gives token Chain[k] the unit vector e_k; every other token
// gets the zero vector.
func chainEmbedding(chain []int, s Shape) func(io.Writer) error {
	return func(w io.Writer) error {
		bpe := s.Type.BytesPerElement()
		buf := make([]byte, s.Hidden*s.Vocab*bpe)
		for k, tok := range chain {
			putValue(buf[(tok*s.Hidden+k)*bpe:], s.Type, 1)
		}
		_, err := w.Write(buf)
		return err
	}
}

// chainOutput makes row Chain[k+1] of the output matrix 16·e_k, so that after
// the final RMS norm (which scales e_k to sqrt(hidden)·e_k) token Chain[k+1]
// gets a logit of 16·sqrt(hidden) and every other token 0.
func chainOutput(chain []int, s Shape) func(io.Writer) error {
	return func(w io.Writer) error {
		bpe := s.Type.BytesPerElement()
		buf := make([]byte, s.Hidden*s.Vocab*bpe)
		for k := 0; k+1 < len(chain); k++ {
			putValue(buf[(chain[k+1]*s.Hidden+k)*bpe:], s.Type, 16)
		}
		_, err := w.Write(buf)
		return err
	}
}
