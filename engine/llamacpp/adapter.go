package llamacpp

/*
#include <stdlib.h>
#include "llama.h"
// Our llama.cpp patch's API (make llama-src puts it into build/ollama-src,
// make deps copies it into .deps/include). Unpatched sources have no such
// header, and stale ones another version: either stops the build here.
#include "llama-qs.h"
#if !defined(LLAMA_QS_PATCH_VERSION) || LLAMA_QS_PATCH_VERSION != 2
#error "llama-qs.h is not version 2 of engine/llamacpp/patches/llama-multilora.patch: run make deps"
#endif
*/
import "C"

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"unsafe"
)

// Adapter is a LoRA adapter loaded for a model (llama.cpp's GGUF LoRA
// format). It can be applied to any context of that model with any scale.
type Adapter struct {
	mu sync.Mutex
	c  *C.struct_llama_adapter_lora
}

// LoadAdapter loads a GGUF LoRA file. llama.cpp checks that it fits the
// model (architecture and tensor shapes) and refuses it otherwise.
func LoadAdapter(m *Model, path string) (*Adapter, error) {
	if err := checkGGUF(path); err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	a := C.llama_adapter_lora_init(m.c, cpath)
	if a == nil {
		return nil, errors.New("llama.cpp refused the adapter: it does not fit the base model (architecture, layer count or tensor shapes), or it is not a LoRA GGUF")
	}
	return &Adapter{c: a}, nil
}

// Close frees the adapter. Idempotent. The caller must make sure no
// sequence's set names it any more (SetSeqAdapters): the scheduler clears
// a slot's set when its request ends, and the adapter registry closes an
// adapter only after its last request ended. Close waits for a
// SetSeqAdapters call that is reading the adapter.
func (a *Adapter) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.c != nil {
		C.llama_adapter_lora_free(a.c)
		a.c = nil
	}
}

// AdapterScale is an adapter applied with a scale.
type AdapterScale struct {
	Adapter *Adapter
	Scale   float32
}

// ErrAdapterClosed means a set named an adapter that was closed.
var ErrAdapterClosed = errors.New("adapter is closed")

// SeqAdapterError is llama.cpp refusing a sequence's adapter set.
type SeqAdapterError struct {
	Seq  int
	Code int // -1: sequence id out of range; -2: the adapter pools could not be allocated; -3: too many adapters
}

// MaxAdapterPairs bounds a sequence's adapters times the context's n_ubatch
// (llama-qs.h's LLAMA_QS_MAX_PAIRS, the y extent of a CUDA grid): a ubatch
// mixing adapter sets runs each (token, adapter) pair as one grid row.
const MaxAdapterPairs = int(C.LLAMA_QS_MAX_PAIRS)

func (e *SeqAdapterError) Error() string {
	switch e.Code {
	case -1:
		return fmt.Sprintf("llama_qs_set_seq_adapters: sequence %d is out of range", e.Seq)
	case -2:
		return fmt.Sprintf("llama_qs_set_seq_adapters: cannot allocate the adapter pools for sequence %d (out of memory?)", e.Seq)
	case -3:
		return fmt.Sprintf("llama_qs_set_seq_adapters: too many adapters for sequence %d (adapters × n_ubatch must be at most %d)", e.Seq, MaxAdapterPairs)
	}
	return fmt.Sprintf("llama_qs_set_seq_adapters failed for sequence %d (%d)", e.Seq, e.Code)
}

// SetSeqAdapters makes exactly these adapters (none: the base model) apply
// to the tokens of sequence seq from the next Decode on; every sequence of
// a batch runs with its own set in the same llama_decode (our llama.cpp
// patch, engine/llamacpp/patches/llama-multilora.patch). llama.cpp copies
// the adapters' weights into per-context pools here, but a set of one
// adapter on every token of a batch runs on the adapter's own tensors: an
// adapter must stay open until every sequence that names it was given
// another set. The graph-reuse guard is llama.cpp's own (the patch keys
// reuse on the adapter assignment).
func (c *Context) SetSeqAdapters(seq int, list []AdapterScale) error {
	n := len(list)
	var ptrs **C.struct_llama_adapter_lora
	var scales *C.float
	if n > 0 {
		// C arrays: the C side reads them during the call only.
		ptrs = (**C.struct_llama_adapter_lora)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(uintptr(0)))))
		defer C.free(unsafe.Pointer(ptrs))
		scales = (*C.float)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(C.float(0)))))
		defer C.free(unsafe.Pointer(scales))
		ps, ss := unsafe.Slice(ptrs, n), unsafe.Slice(scales, n)
		for i, a := range list {
			if a.Adapter == nil {
				return ErrAdapterClosed
			}
			// Held across the call (once per adapter, which a set may name
			// twice): Close waits, so llama.cpp reads a live adapter while
			// it copies it into its pools.
			if !slices.ContainsFunc(list[:i], func(p AdapterScale) bool { return p.Adapter == a.Adapter }) {
				a.Adapter.mu.Lock()
				defer a.Adapter.mu.Unlock()
			}
			if a.Adapter.c == nil {
				return ErrAdapterClosed
			}
			ps[i], ss[i] = a.Adapter.c, C.float(a.Scale)
		}
	}
	if r := C.llama_qs_set_seq_adapters(c.c, C.llama_seq_id(seq), C.int32_t(n), ptrs, scales); r != 0 {
		return &SeqAdapterError{Seq: seq, Code: int(r)}
	}
	return nil
}
