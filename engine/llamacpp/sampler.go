package llamacpp

/*
#include <stdlib.h>
#include "sample.h"
*/
import "C"

import (
	"errors"
	"unsafe"

	ollamallama "github.com/ollama/ollama/llama"
)

// SamplerParams is one sequence's sampling configuration. Zero values mean
// "off" except where noted.
type SamplerParams struct {
	Temperature      float32 // 0 = greedy
	TopK             int     // 0 = whole vocabulary
	TopP             float32 // 0 or 1 = off
	MinP             float32
	RepeatPenalty    float32 // 1 or 0 = off
	PresencePenalty  float32
	FrequencyPenalty float32
	RepeatLastN      int // window for the three penalties (default 64)
	Seed             uint32
	HasSeed          bool
	Grammar          string // GBNF, root rule "root"
}

// SchemaToGrammar converts a JSON schema to a GBNF grammar with llama.cpp's
// converter; "" when the schema is invalid or unsupported.
func SchemaToGrammar(schema []byte) string {
	return string(ollamallama.SchemaToGrammar(schema))
}

// fastTopKLimit bounds the one-pass top-k selection (insertion into a small
// sorted array is O(vocab·k) in the worst case; beyond this the full sort
// wins).
const fastTopKLimit = 128

// Sampler is a llama.cpp sampler chain plus the scratch buffer that one
// sampling call needs. Sample may run concurrently with other Samplers'.
type Sampler struct {
	c      *C.struct_llama_sampler
	cbuf   *C.llama_token_data
	fastK  int
	greedy bool
	nVocab int
}

// NewSampler builds the chain: [grammar] [penalties] top-k top-p min-p temp dist,
// or greedy when Temperature is 0.
func NewSampler(m *Model, p SamplerParams) (*Sampler, error) {
	chain := C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
	if chain == nil {
		return nil, errors.New("llama_sampler_chain_init failed")
	}
	s := &Sampler{c: chain, nVocab: m.nVocab}
	full := false
	if p.Grammar != "" {
		cg := C.CString(p.Grammar)
		croot := C.CString("root")
		g := C.llama_sampler_init_grammar(m.vocab, cg, croot)
		C.free(unsafe.Pointer(cg))
		C.free(unsafe.Pointer(croot))
		if g == nil {
			C.llama_sampler_free(chain)
			return nil, errors.New("invalid grammar")
		}
		C.llama_sampler_chain_add(chain, g)
		full = true
	}
	penalties := (p.RepeatPenalty != 0 && p.RepeatPenalty != 1) || p.PresencePenalty != 0 || p.FrequencyPenalty != 0
	if penalties {
		lastN := p.RepeatLastN
		if lastN == 0 {
			lastN = 64
		}
		rp := p.RepeatPenalty
		if rp == 0 {
			rp = 1
		}
		C.llama_sampler_chain_add(chain, C.llama_sampler_init_penalties(C.int32_t(lastN), C.float(rp), C.float(p.FrequencyPenalty), C.float(p.PresencePenalty)))
		full = true
	}
	if p.Temperature <= 0 {
		C.llama_sampler_chain_add(chain, C.llama_sampler_init_greedy())
		s.greedy = !full
	} else {
		if p.TopK > 0 {
			C.llama_sampler_chain_add(chain, C.llama_sampler_init_top_k(C.int32_t(p.TopK)))
		}
		if p.TopP > 0 && p.TopP < 1 {
			C.llama_sampler_chain_add(chain, C.llama_sampler_init_top_p(C.float(p.TopP), 1))
		}
		if p.MinP > 0 {
			C.llama_sampler_chain_add(chain, C.llama_sampler_init_min_p(C.float(p.MinP), 1))
		}
		C.llama_sampler_chain_add(chain, C.llama_sampler_init_temp(C.float(p.Temperature)))
		seed := C.uint32_t(C.LLAMA_DEFAULT_SEED)
		if p.HasSeed {
			seed = C.uint32_t(p.Seed)
		}
		C.llama_sampler_chain_add(chain, C.llama_sampler_init_dist(seed))
		if !full && p.TopK > 0 && p.TopK <= fastTopKLimit {
			s.fastK = p.TopK
		}
	}
	n := m.nVocab
	if s.fastK > 0 {
		n = s.fastK
	}
	if s.greedy {
		n = 1
	}
	// The scratch buffer lives in C memory: llama_sampler_apply keeps no
	// pointer to it, but cgo forbids passing Go memory that C might retain.
	s.cbuf = (*C.llama_token_data)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(C.llama_token_data{}))))
	if s.cbuf == nil {
		C.llama_sampler_free(chain)
		return nil, errors.New("out of memory")
	}
	return s, nil
}

// resizeForFull reallocates the scratch buffer for the whole vocabulary
// (tests use it to compare the fast path with the full one).
func (s *Sampler) resizeForFull(m *Model) {
	C.free(unsafe.Pointer(s.cbuf))
	s.cbuf = (*C.llama_token_data)(C.malloc(C.size_t(m.nVocab) * C.size_t(unsafe.Sizeof(C.llama_token_data{}))))
}

// Sample picks a token from logits (a row from Context.Logits).
func (s *Sampler) Sample(logits []float32) int32 {
	g := C.int(0)
	if s.greedy {
		g = 1
	}
	return int32(C.qs_sample(s.c, (*C.float)(unsafe.Pointer(&logits[0])), C.int32_t(s.nVocab), s.cbuf, C.int32_t(s.fastK), g))
}

// SampleMany samples several sequences at once on a pool of C threads
// (threads in all, the caller included): out[i] is drawn by ss[i] from
// logits[i]. Each sampler must appear once.
func SampleMany(ss []*Sampler, logits [][]float32, out []int32, threads int) {
	n := len(ss)
	if n == 0 {
		return
	}
	jobs := (*C.qs_job)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(C.qs_job{}))))
	defer C.free(unsafe.Pointer(jobs))
	js := unsafe.Slice(jobs, n)
	for i, s := range ss {
		g := C.int32_t(0)
		if s.greedy {
			g = 1
		}
		js[i] = C.qs_job{chain: s.c, logits: (*C.float)(unsafe.Pointer(&logits[i][0])), buf: s.cbuf, fast_k: C.int32_t(s.fastK), greedy: g}
	}
	C.qs_sample_batch(jobs, C.int(n), C.int32_t(ss[0].nVocab), C.int(max(1, threads)))
	for i := range out[:n] {
		out[i] = int32(js[i].result)
	}
}

// Accept tells stateful samplers (penalties, grammar) the chosen token.
func (s *Sampler) Accept(tok int32) { C.llama_sampler_accept(s.c, C.llama_token(tok)) }

// Close frees the chain. Idempotent.
func (s *Sampler) Close() {
	if s.c != nil {
		C.llama_sampler_free(s.c)
		s.c = nil
	}
	if s.cbuf != nil {
		C.free(unsafe.Pointer(s.cbuf))
		s.cbuf = nil
	}
}
