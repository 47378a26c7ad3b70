package eval

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Split holds out n items, chosen reproducibly by seed: the same file, n
// and seed give the same test set on every machine and Go version. The
// permutation is a Fisher–Yates shuffle driven by PCG (seed, seed), whose
// output is fixed by its definition; the reduction to a range is written
// here (Lemire's multiply-shift with rejection) because rand's own IntN
// and Shuffle may change between releases. Both parts keep the file's
// order, and the test items are renumbered.
func Split(items []*Item, n int, seed uint64) (train, test []*Item, err error) {
	if n <= 0 || n >= len(items) {
		return nil, nil, fmt.Errorf("--split %d: want between 1 and %d (the set has %d items)", n, len(items)-1, len(items))
	}
	r := rand.NewPCG(seed, seed)
	perm := make([]int, len(items))
	for i := range perm {
		perm[i] = i
	}
	for i := len(perm) - 1; i > 0; i-- {
		j := bounded(r, uint64(i+1))
		perm[i], perm[j] = perm[j], perm[i]
	}
	held := make([]bool, len(items))
	for _, i := range perm[:n] {
		held[i] = true
	}
	for i, it := range items {
		if held[i] {
			test = append(test, it)
		} else {
			train = append(train, it)
		}
	}
	return train, Renumber(test), nil
}

// bounded is a uniform integer in [0, n).
func bounded(r *rand.PCG, n uint64) int {
	for {
		hi, lo := bits.Mul64(r.Uint64(), n)
		if lo >= -n%n { // reject the biased low products
			return int(hi)
		}
	}
}

// Renumber gives the items their positions as indexes.
func Renumber(items []*Item) []*Item {
	out := make([]*Item, len(items))
	for i, it := range items {
		c := *it
		c.Index = i
		out[i] = &c
	}
	return out
}
