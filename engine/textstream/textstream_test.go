package textstream

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// run feeds pieces and returns the emitted text, checking on the way that
// every emitted fragment is valid UTF-8.
func run(t *testing.T, stops []string, pieces [][]byte) (string, bool) {
	t.Helper()
	s := New(stops)
	var out strings.Builder
	for _, p := range pieces {
		text, stopped := s.Push(p)
		if !utf8.ValidString(text) {
			t.Fatalf("emitted invalid UTF-8 %q", text)
		}
		out.WriteString(text)
		if stopped {
			return out.String(), true
		}
	}
	out.WriteString(s.Flush())
	return out.String(), false
}

// splits calls fn with every way of cutting b into contiguous pieces.
func splits(b []byte, fn func([][]byte)) {
	n := len(b)
	if n == 0 {
		fn(nil)
		return
	}
	for mask := 0; mask < 1<<(n-1); mask++ {
		var pieces [][]byte
		start := 0
		for i := 1; i < n; i++ {
			if mask&(1<<(i-1)) != 0 {
				pieces = append(pieces, b[start:i])
				start = i
			}
		}
		pieces = append(pieces, b[start:])
		fn(pieces)
	}
}

func TestEverySplit(t *testing.T) {
	cases := []struct {
		name    string
		input   string
		stops   []string
		want    string
		stopped bool
	}{
		{"plain", "hello", nil, "hello", false},
		{"multibyte", "é你🙂", nil, "é你🙂", false},
		{"stop in middle", "ab STOP cd", []string{"STOP"}, "ab ", true},
		{"stop at end", "abcSTOP", []string{"STOP"}, "abc", true},
		{"near miss released", "abSTOxyz", []string{"STOP"}, "abSTOxyz", false},
		{"near miss at end flushed", "abST", []string{"STOP"}, "abST", false},
		{"earliest of two", "x##y!!", []string{"!!", "##"}, "x", true},
		{"overlapping prefix", "aaab", []string{"aab"}, "a", true},
		{"multibyte stop", "答案：完", []string{"：完"}, "答案", true},
		{"stop after emoji", "🙂</s>", []string{"</s>"}, "🙂", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			splits([]byte(c.input), func(pieces [][]byte) {
				got, stopped := run(t, c.stops, pieces)
				if got != c.want || stopped != c.stopped {
					t.Fatalf("pieces %q: got %q stopped=%v, want %q stopped=%v", pieces, got, stopped, c.want, c.stopped)
				}
			})
		})
	}
}

func TestHoldsPartialCharacter(t *testing.T) {
	s := New(nil)
	euro := []byte("€") // 3 bytes
	if text, _ := s.Push(euro[:1]); text != "" {
		t.Fatalf("emitted %q from a partial character", text)
	}
	if text, _ := s.Push(euro[1:2]); text != "" {
		t.Fatalf("emitted %q from a partial character", text)
	}
	if text, _ := s.Push(euro[2:]); text != "€" {
		t.Fatalf("got %q, want €", text)
	}
}

func TestInvalidBytesBecomeReplacement(t *testing.T) {
	got, _ := run(t, nil, [][]byte{{'a', 0xff, 'b'}, {0xe2, 0x82}})
	if got != "a\uFFFDb\uFFFD" {
		t.Fatalf("got %q", got)
	}
}

func TestHoldsStopPrefixThenReleases(t *testing.T) {
	s := New([]string{"<|end|>"})
	if text, _ := s.Push([]byte("hi <|en")); text != "hi " {
		t.Fatalf("got %q, want the prefix held back", text)
	}
	if text, stopped := s.Push([]byte("x")); text != "<|enx" || stopped {
		t.Fatalf("got %q %v", text, stopped)
	}
}

// Released counts raw bytes: held-back bytes are not released until they
// come out, a stop string and what follows never are.
func TestReleased(t *testing.T) {
	s := New([]string{"STOP"})
	steps := []struct {
		piece    string
		released int
	}{{"ab", 2}, {"\xe2\x82", 2}, {"\xac S", 6}, {"T", 6}, {"x", 9}, {"STO", 9}, {"Pzz", 9}}
	for _, st := range steps {
		s.Push([]byte(st.piece))
		if s.Released() != st.released {
			t.Fatalf("after %q: released %d, want %d", st.piece, s.Released(), st.released)
		}
	}
	f := New(nil)
	f.Push([]byte("a\xe2"))
	f.Flush()
	if f.Released() != 2 {
		t.Fatalf("flush: released %d", f.Released())
	}
}
