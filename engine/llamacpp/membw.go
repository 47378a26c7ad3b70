package llamacpp

// #include "membw.h"
import "C"

import (
	"sync"
	"time"
	"unsafe"
)

// MemoryReadBandwidth is how fast threads OS threads together read a buffer
// of about bufBytes (bytes/s, the best of several passes): the bound on one
// sequence's CPU decoding, which reads every weight once per token. Give it
// the weights' size, so that caches help it exactly as much as they help
// decoding. The loop is C with SIMD loads (membw.c): Go's loop reads ~40%
// slower than the memory system allows.
func MemoryReadBandwidth(threads, bufBytes int) float64 {
	if threads < 1 {
		threads = 1
	}
	words := bufBytes / 8 / threads / 8 * 8
	parts := make([][]uint64, threads)
	for i := range parts {
		parts[i] = make([]uint64, words)
		for j := range parts[i] {
			parts[i][j] = uint64(j) // touch every page
		}
	}
	best := 0.0
	var sink uint64
	var mu sync.Mutex
	for pass := 0; pass < 8; pass++ {
		var wg sync.WaitGroup
		start := time.Now()
		for _, p := range parts {
			wg.Add(1)
			go func(p []uint64) {
				defer wg.Done()
				s := uint64(C.qs_read_sum((*C.uint64_t)(unsafe.Pointer(&p[0])), C.size_t(len(p))))
				mu.Lock()
				sink += s
				mu.Unlock()
			}(p)
		}
		wg.Wait()
		if bw := float64(words*8*threads) / time.Since(start).Seconds(); bw > best {
			best = bw
		}
	}
	_ = sink
	return best
}
