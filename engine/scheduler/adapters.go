package scheduler

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
)

// Adapter is a LoRA adapter loaded by this engine.
type Adapter struct {
	a *llamacpp.Adapter
	// id names the adapter in adapter-set keys. Not its address: an adapter
	// loaded after another was freed may get the freed one's address, and
	// the loop, seeing the key of the set still applied to the context,
	// would decode with the freed adapter.
	id uint64
}

var adapterIDs atomic.Uint64

func newAdapter(a *llamacpp.Adapter) *Adapter { return &Adapter{a: a, id: adapterIDs.Add(1)} }

// AdapterFrom wraps an adapter loaded with llamacpp.LoadAdapter on this
// engine's model (the bench command loads adapters once for several engines).
func AdapterFrom(a *llamacpp.Adapter) engine.Adapter { return newAdapter(a) }

// Close frees the adapter; the caller makes sure no request uses it.
func (a *Adapter) Close() { a.a.Close() }

// LoadAdapter implements engine.AdapterLoader. Loading does not touch the
// context, so it runs on the caller's goroutine while requests decode.
func (e *Engine) LoadAdapter(path string) (engine.Adapter, error) {
	a, err := llamacpp.LoadAdapter(e.model, path)
	if err != nil {
		return nil, err
	}
	return newAdapter(a), nil
}

// adapterKey unwraps a request's adapters and names the set; a handle this
// engine did not load is a request error.
func adapterKey(uses []engine.AdapterUse) (string, []llamacpp.AdapterScale, error) {
	if len(uses) == 0 {
		return "", nil, nil
	}
	var b strings.Builder
	list := make([]llamacpp.AdapterScale, 0, len(uses))
	for i, u := range uses {
		a, ok := u.Adapter.(*Adapter)
		if !ok || a == nil || a.a == nil {
			return "", nil, engine.Errorf(engine.KindInvalid, "", "adapter %d is a %T, not an adapter this engine loaded (LoadAdapter or AdapterFrom)", i, u.Adapter)
		}
		fmt.Fprintf(&b, "%d:%g;", a.id, u.Scale)
		list = append(list, llamacpp.AdapterScale{Adapter: a.a, Scale: u.Scale})
	}
	return b.String(), list, nil
}
