package llamacpp

/*
#include <stdlib.h>
#include "llama.h"
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

// Close frees the adapter. Idempotent. The caller must make sure no context
// still uses it (the scheduler clears a context's adapters first).
func (a *Adapter) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.c != nil {
		if !keepOnClose() {
			C.llama_adapter_lora_free(a.c)
		}
		a.c = nil
	}
}

// AdapterScale is an adapter applied with a scale.
type AdapterScale struct {
	Adapter *Adapter
	Scale   float32
}

// SetAdapters makes exactly these adapters active on the context for the
// following decodes.
func (c *Context) SetAdapters(list []AdapterScale) error {
	// Decode's graph-reuse guard needs to know when the set changes. The
	// Go handles are compared, not the C addresses: an adapter loaded after
	// another was freed may get its address, never its *Adapter.
	if !slices.Equal(list, c.applied) {
		c.adapterGen++
		c.applied = append(c.applied[:0], list...)
	}
	C.llama_clear_adapter_lora(c.c)
	for _, a := range list {
		if a.Adapter == nil || a.Adapter.c == nil {
			return errors.New("adapter is closed")
		}
		if r := C.llama_set_adapter_lora(c.c, a.Adapter.c, C.float(a.Scale)); r != 0 {
			return fmt.Errorf("llama_set_adapter_lora failed (%d)", int(r))
		}
	}
	return nil
}
