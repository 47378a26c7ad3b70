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
	lpN    int      // top alternatives to compute with each sample; -1: no logprobs
	lp     Logprobs // the last sample's
}

// Logprobs is one logits row's log-softmax summary, computed from the raw
// logits (before any sampler).
type Logprobs struct {
	LSE    float32   // log(sum(exp(logits))): a token's logprob is logits[t] - LSE
	IDs    []int32   // the best tokens, best first (ties: lower id first)
	Values []float32 // their logprobs
}

// MaxLogprobs is the most alternatives Logprobs holds.
const MaxLogprobs = C.QS_MAX_LOGPROBS

// NewSampler builds the chain: [grammar] [penalties] top-k top-p min-p temp dist,
// or greedy when Temperature is 0.
func NewSampler(m *Model, p SamplerParams) (*Sampler, error) {
	chain := C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
	if chain == nil {
		return nil, errors.New("llama_sampler_chain_init failed")
	}
	s := &Sampler{c: chain, nVocab: m.nVocab, lpN: -1}
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

// SetLogprobs makes every Sample also compute the row's logprobs with top
// (0..MaxLogprobs) alternatives, read with Logprobs; top < 0 turns it off.
func (s *Sampler) SetLogprobs(top int) { s.lpN = min(top, MaxLogprobs) }

// Logprobs is the last Sample's (SetLogprobs); valid until the next Sample.
func (s *Sampler) Logprobs() Logprobs { return s.lp }

// Sample picks a token from logits (a row from Context.Logits).
func (s *Sampler) Sample(logits []float32) int32 {
	if s.lpN >= 0 {
		var out [1]int32
		SampleMany([]*Sampler{s}, [][]float32{logits}, out[:], 1)
		return out[0]
	}
	g := C.int(0)
	if s.greedy {
		g = 1
	}
	return int32(C.qs_sample(s.c, (*C.float)(unsafe.Pointer(&logits[0])), C.int32_t(s.nVocab), s.cbuf, C.int32_t(s.fastK), g))
}

// job is the C description of sampling logits with s.
func (s *Sampler) job(logits []float32) C.qs_job {
	g := C.int32_t(0)
	if s.greedy {
		g = 1
	}
	return C.qs_job{chain: s.c, logits: (*C.float)(unsafe.Pointer(&logits[0])), buf: s.cbuf, fast_k: C.int32_t(s.fastK), greedy: g, lp_n: C.int32_t(s.lpN)}
}

// jobLogprobs copies a job's logprobs into Go memory.
func jobLogprobs(j *C.qs_job) Logprobs {
	n := max(0, min(int(j.lp_n), MaxLogprobs))
	lp := Logprobs{LSE: float32(j.lp_lse), IDs: make([]int32, n), Values: make([]float32, n)}
	for i := range n {
		lp.IDs[i], lp.Values[i] = int32(j.lp_ids[i]), float32(j.lp_vals[i])
	}
	return lp
}

// LogprobsMany computes the logprobs (top alternatives each) of several
// logits rows at once on the sampling thread pool (prompt logprobs).
func LogprobsMany(rows [][]float32, top int, nVocab int, threads int) []Logprobs {
	n := len(rows)
	if n == 0 {
		return nil
	}
	js, free := cJobs(n)
	defer free()
	for i, r := range rows {
		js[i] = C.qs_job{logits: (*C.float)(unsafe.Pointer(&r[0])), lp_n: C.int32_t(max(0, min(top, MaxLogprobs)))}
	}
	C.qs_sample_batch(&js[0], C.int(n), C.int32_t(nVocab), C.int(max(1, threads)))
	out := make([]Logprobs, n)
	for i := range js {
		out[i] = jobLogprobs(&js[i])
	}
	return out
}

// cJobs allocates n jobs in C memory (the pool's threads read them after
// the call into C has started, which cgo does not allow for Go memory).
func cJobs(n int) ([]C.qs_job, func()) {
	jobs := (*C.qs_job)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(C.qs_job{}))))
	return unsafe.Slice(jobs, n), func() { C.free(unsafe.Pointer(jobs)) }
}

// SampleMany samples several sequences at once on a pool of C threads
// (threads in all, the caller included): out[i] is drawn by ss[i] from
// logits[i]. Each sampler must appear once.
func SampleMany(ss []*Sampler, logits [][]float32, out []int32, threads int) {
	n := len(ss)
	if n == 0 {
		return
	}
	js, free := cJobs(n)
	defer free()
	for i, s := range ss {
		js[i] = s.job(logits[i])
	}
	C.qs_sample_batch(&js[0], C.int(n), C.int32_t(ss[0].nVocab), C.int(max(1, threads)))
	for i := range out[:n] {
		out[i] = int32(js[i].result)
		if ss[i].lpN >= 0 {
			ss[i].lp = jobLogprobs(&js[i])
		}
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
