package bench

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/qwen3-lora/qwen3-server/gguf"
)

// MemoryReadBandwidth measures how fast threads goroutines together read a
// buffer far larger than the caches (bytes/s, the best of several passes):
// the bound on single-sequence CPU decoding, which reads every weight once
// per token. 8 independent sums per loop keep enough loads in flight that
// the memory system, not the loop, is the limit; on the 2-core development
// machines this reads within a few percent of an AVX2 loop in C.
func MemoryReadBandwidth(threads int, bufBytes int) float64 {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	words := bufBytes / 8 / threads / 8 * 8
	parts := make([][]uint64, threads)
	for i := range parts {
		parts[i] = make([]uint64, words)
		for j := range parts[i] {
			parts[i][j] = uint64(j) // touch every page, and keep them distinct
		}
	}
	best := 0.0
	var sink uint64
	var mu sync.Mutex
	for pass := 0; pass < 5; pass++ {
		var wg sync.WaitGroup
		start := time.Now()
		for _, p := range parts {
			wg.Add(1)
			go func(p []uint64) {
				defer wg.Done()
				var s0, s1, s2, s3, s4, s5, s6, s7 uint64
				for j := 0; j+8 <= len(p); j += 8 {
					s0 += p[j]
					s1 += p[j+1]
					s2 += p[j+2]
					s3 += p[j+3]
					s4 += p[j+4]
					s5 += p[j+5]
					s6 += p[j+6]
					s7 += p[j+7]
				}
				mu.Lock()
				sink += s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
				mu.Unlock()
			}(p)
		}
		wg.Wait()
		if bw := float64(words*8*threads) / time.Since(start).Seconds(); bw > best {
			best = bw
		}
	}
	if sink == 1 { // keeps the sums from being optimised away
		fmt.Fprint(os.Stderr, "")
	}
	return best
}

// WeightBytesPerToken is what one decode step of one sequence reads from
// the model file: every tensor, except that the token embedding matrix is
// only looked up (one row) when the model has its own output matrix; with
// tied embeddings (Qwen3 up to 4B, and the generated models) it is the
// output projection and read whole. Sizes come from the tensors' offsets, so
// any quantization counts right.
func WeightBytesPerToken(path string) (uint64, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	ts := make([]gguf.TensorInfo, 0, len(f.Tensors))
	for _, t := range f.Tensors {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Offset < ts[j].Offset })
	_, untied := f.Tensors["output.weight"]
	var total uint64
	for i, t := range ts {
		end := uint64(st.Size())
		if i+1 < len(ts) {
			end = ts[i+1].Offset
		}
		if t.Name == "token_embd.weight" && untied {
			continue
		}
		total += end - t.Offset
	}
	return total, nil
}
