package eval

import (
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	p := newProgress(nil, 10, 2) // resumed: 2 done before
	p.start = time.Now().Add(-4 * time.Second)
	for range 4 {
		p.add(25)
	}
	l := p.line()
	// 6 of 10 done, 100 tokens in 4 s, 4 items in 4 s: 4 left take 4 s.
	for _, want := range []string{"[############........]", "6/10 items", "25.0 tokens/s", "ETA 4s"} {
		if !strings.Contains(l, want) {
			t.Errorf("%q lacks %q", l, want)
		}
	}
}
