package scheduler

// The prefix cache: a slot keeps the KV cells of its last sequence after it
// ends, so the next request whose prompt starts with the same tokens (a
// multi-turn chat, a shared system prompt) decodes only the rest.

// chooseSlot picks the free slot for a prompt under adapter set key: the
// one whose cached cells share the longest prefix with it (cells computed
// under another adapter set are not reusable), else the slot placement
// chooses. It returns the slot and the shared prefix length.
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
		// No cached prefix to reuse: place it beside its adapter group.
		best = e.slots[e.placement(key)]
	}
	return best, bestLen
}

// placement applies placement() to the slots' current state.
func (e *Engine) placement(key string) int {
	busy, keys := make([]bool, len(e.slots)), make([]string, len(e.slots))
	for i, s := range e.slots {
		if s.seq != nil {
			busy[i], keys[i] = true, s.cacheKey // a busy slot's cacheKey is its sequence's
		}
	}
	return placement(busy, keys, key)
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

// placement picks the free slot for a new sequence of adapter set key so
// that sequences sharing an adapter set hold consecutive sequence ids.
//
// Why: with a KV stream per sequence (kv_unified off), llama.cpp puts
// tokens of several sequences into one ubatch only when their ids are
// consecutive, because the attention views a contiguous range of streams.
// A gap splits the decode of one adapter group into one graph per run of
// ids, and each graph reads all the weights again: on an H200, 4 adapter
// groups of 4 streams with interleaved ids ran at a tenth of the speed of
// one group of 16.
//
// Rules: extend a run of the same key, on its right first; else start a
// new run at the start of the first slot range if it is free, or in the
// middle of the largest free gap, leaving room for the runs on both sides
// to grow. busy[i] tells whether slot i holds a sequence, keys[i] its
// adapter set. It returns -1 when no slot is free.
func placement(busy []bool, keys []string, key string) int {
	n := len(busy)
	same := func(i int) bool { return i >= 0 && i < n && busy[i] && keys[i] == key }
	left := -1
	for i := 0; i < n; i++ {
		if busy[i] {
			continue
		}
		if same(i - 1) {
			return i
		}
		if left < 0 && same(i+1) {
			left = i
		}
	}
	if left >= 0 {
		return left
	}
	best, bestLen := -1, 0
	for i := 0; i < n; {
		if busy[i] {
			i++
			continue
		}
		j := i
		for j < n && !busy[j] {
			j++
		}
		if j-i > bestLen {
			best, bestLen = i, j-i
			if i > 0 {
				best = i + (j-i)/2
			}
		}
		i = j
	}
	return best
}
