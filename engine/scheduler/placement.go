package scheduler

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
