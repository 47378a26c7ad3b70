package bench

import (
	"testing"
	"time"
)

func TestSteadyState(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var out []time.Time
		for _, m := range ms {
			out = append(out, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	// stream 0 starts at 0 and ends at 400; stream 1 starts at 100 and ends
	// at 500: the window is (100, 400], holding 3 + 3 tokens over 0.3 s.
	total, lastFirst, err := steadyState([][]time.Time{at(0, 100, 200, 300, 400), at(100, 200, 300, 400, 500)})
	if err != nil || !lastFirst.Equal(t0.Add(100*time.Millisecond)) || total < 19.99 || total > 20.01 {
		t.Fatalf("total %v lastFirst %v err %v", total, lastFirst, err)
	}
	// streams that never overlap have no steady state
	if _, _, err := steadyState([][]time.Time{at(0, 10), at(20, 30)}); err == nil {
		t.Fatal("disjoint streams gave a window")
	}
	if _, _, err := steadyState([][]time.Time{at(0)}); err == nil {
		t.Fatal("a one-token stream gave a window")
	}
	p50, p95 := percentiles([]time.Duration{3, 1, 2, 5, 4})
	if p50 != 3 || p95 != 5 {
		t.Fatalf("p50 %v p95 %v", p50, p95)
	}
}
