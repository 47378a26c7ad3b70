package scheduler

// The prefix cache: a slot keeps the KV cells of its last sequence after it
// ends, so the next request whose prompt starts with the same tokens (a
// multi-turn chat, a shared system prompt) decodes only the rest.

// chooseSlot picks the free slot for a prompt under adapter set key: the
// one whose cached cells share the longest prefix with it (cells computed
// under another adapter set are not reusable), else the lowest free slot
// (see lowestFree). It returns the slot and the shared prefix length.
func (e *Engine) chooseSlot(free []*slot, key string, prompt []int32) (*slot, int) {
	best, bestLen := free[0], 0
	for _, s := range free {
		n := 0
		if s.cacheKey == key {
			n = commonPrefix(s.cache, prompt)
		}
		if n > bestLen {
			best, bestLen = s, n
		}
	}
	if bestLen == 0 {
		best = lowestFree(free)
	}
	return best, bestLen
}

// lowestFree is the free slot with the lowest sequence id.
//
// Why: every busy slot is decoded in one batch, whatever its adapters (they
// are per sequence in llama.cpp: engine/llamacpp.Context.SetSeqAdapters).
// With a KV stream per sequence (kv_unified off), llama.cpp puts tokens of
// several sequences into one ubatch only when their ids are consecutive,
// because the attention views a contiguous range of streams; a gap splits
// the step into one graph per run of ids, each reading all the weights
// again. Filling the lowest hole first keeps the busy ids as few runs as
// sequences ending in any order allow.
func lowestFree(free []*slot) *slot {
	best := free[0]
	for _, s := range free {
		if s.id < best.id {
			best = s
		}
	}
	return best
}

func (e *Engine) freeSlots() []*slot {
	var free []*slot
	for _, s := range e.slots {
		if s.seq == nil {
			free = append(free, s)
		}
	}
	return free
}

func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// dropIdleCaches frees the KV cells that slots without a sequence keep for
// prefix reuse; it reports whether there were any.
func (e *Engine) dropIdleCaches() bool {
	freed := false
	for _, s := range e.slots {
		if s.seq == nil && len(s.cache) > 0 {
			e.lctx.SeqRm(s.id, -1, -1)
			s.cache = s.cache[:0]
			freed = true
		}
	}
	return freed
}
