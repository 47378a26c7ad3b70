package scheduler

import (
	"fmt"
	"testing"
)

// runs counts the runs of consecutive ids each key holds: the number of
// graphs one step needs.
func runs(busy []bool, keys []string) int {
	n := 0
	for i := range busy {
		if busy[i] && (i == 0 || !busy[i-1] || keys[i-1] != keys[i]) {
			n++
		}
	}
	return n
}

func TestPlacementKeepsAdapterGroupsContiguous(t *testing.T) {
	for _, groups := range []int{1, 2, 4, 8} {
		busy, keys := make([]bool, 16), make([]string, 16)
		// Requests arrive interleaved: a0 a1 a2 a3 a0 a1 ...
		for r := 0; r < 16; r++ {
			key := fmt.Sprintf("a%d", r%groups)
			i := placement(busy, keys, key)
			if i < 0 || busy[i] {
				t.Fatalf("groups %d, request %d: slot %d", groups, r, i)
			}
			busy[i], keys[i] = true, key
		}
		if got := runs(busy, keys); got != groups {
			t.Errorf("%d groups: %d runs, want %d: %v", groups, got, groups, keys)
		}
	}
}

func TestPlacementExtendsRunsAndFillsGaps(t *testing.T) {
	busy := []bool{true, true, false, false, true, false}
	keys := []string{"a", "a", "", "", "b", ""}
	if i := placement(busy, keys, "a"); i != 2 {
		t.Errorf("a: slot %d, want 2 (extend its run to the right)", i)
	}
	if i := placement(busy, keys, "b"); i != 5 {
		t.Errorf("b: slot %d, want 5", i)
	}
	busy[5], keys[5] = true, "x"
	if i := placement(busy, keys, "b"); i != 3 {
		t.Errorf("b with its right side taken: slot %d, want 3 (extend to the left)", i)
	}
	if i := placement(busy, keys, "c"); i != 3 {
		t.Errorf("new key: slot %d, want 3 (middle of the gap)", i)
	}
	if i := placement([]bool{true, true}, []string{"a", "a"}, "a"); i != -1 {
		t.Errorf("full: %d, want -1", i)
	}
	if i := placement(make([]bool, 8), make([]string, 8), "a"); i != 0 {
		t.Errorf("empty: %d, want 0", i)
	}
}
