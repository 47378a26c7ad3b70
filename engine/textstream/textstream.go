// Package textstream turns the byte pieces of generated tokens into text that
// is safe to stream: only whole UTF-8 characters, and never any part of a
// stop string. It is a small state machine: bytes that may still complete a
// character or a stop string are held back until they either do (and are
// emitted, or end the stream) or cannot (and are released).
package textstream

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// Stream is the per-sequence state. The zero value has no stop strings.
type Stream struct {
	stops    [][]byte
	pending  []byte
	stopped  bool
	released int // bytes pushed that have left pending as text
}

// New returns a stream that ends at the first occurrence of any of stops.
// Empty stop strings are ignored.
func New(stops []string) *Stream {
	s := &Stream{}
	for _, st := range stops {
		if st != "" {
			s.stops = append(s.stops, []byte(st))
		}
	}
	return s
}

// Push adds the bytes of one token. It returns the text that may be emitted
// now and whether a stop string was found (the stream then ends; the stop
// string and anything after it are dropped).
func (s *Stream) Push(piece []byte) (text string, stopped bool) {
	if s.stopped {
		return "", true
	}
	s.pending = append(s.pending, piece...)
	if i, _ := s.firstStop(); i >= 0 {
		text = validUTF8(s.pending[:i])
		s.released += i
		s.pending = s.pending[:0]
		s.stopped = true
		return text, true
	}
	n := len(s.pending) - s.holdBack()
	s.released += n
	text = validUTF8(s.pending[:n])
	s.pending = append(s.pending[:0], s.pending[n:]...)
	return text, false
}

// Flush ends the stream (end of generation, max tokens) and returns what was
// still held back; incomplete characters become U+FFFD.
func (s *Stream) Flush() string {
	if s.stopped {
		return ""
	}
	text := validUTF8(s.pending)
	s.released += len(s.pending)
	s.pending = s.pending[:0]
	return text
}

// Released is how many of the bytes pushed so far have come out as text
// (counting raw bytes, before invalid ones become U+FFFD); after a stop,
// the bytes before the stop string. Logprobs use it to tell which tokens a
// text carries.
func (s *Stream) Released() int { return s.released }

// firstStop finds the earliest stop string in pending.
func (s *Stream) firstStop() (int, int) {
	best, which := -1, -1
	for k, st := range s.stops {
		if i := bytes.Index(s.pending, st); i >= 0 && (best < 0 || i < best) {
			best, which = i, k
		}
	}
	return best, which
}

// holdBack is how many trailing bytes must wait: the longest suffix that is
// a proper prefix of a stop string, or an incomplete UTF-8 character.
func (s *Stream) holdBack() int {
	hold := incompleteUTF8Tail(s.pending)
	for _, st := range s.stops {
		maxLen := min(len(st)-1, len(s.pending))
		for l := maxLen; l > hold; l-- {
			if bytes.HasSuffix(s.pending, st[:l]) {
				hold = l
				break
			}
		}
	}
	return hold
}

// incompleteUTF8Tail is the length of a trailing, not yet complete, UTF-8
// sequence (0 if the buffer ends on a character boundary or in bytes that
// can never become valid).
func incompleteUTF8Tail(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < 0x80 {
			return 0 // ASCII: boundary
		}
		if c >= 0xC0 { // a lead byte k bytes from the end
			need := 0
			switch {
			case c >= 0xF0 && c <= 0xF4:
				need = 4
			case c >= 0xE0:
				need = 3
			case c >= 0xC2:
				need = 2
			}
			if need > k && utf8.FullRune(b[len(b)-k:]) == false {
				// Only hold it if what we have so far can still be valid.
				if validPrefix(b[len(b)-k:], need) {
					return k
				}
			}
			return 0
		}
	}
	return 0
}

// validPrefix reports whether p (shorter than need) can start a valid
// UTF-8 sequence of length need.
func validPrefix(p []byte, need int) bool {
	full := make([]byte, need)
	copy(full, p)
	for i := len(p); i < need; i++ {
		full[i] = 0x80
	}
	// Try the smallest and largest continuation bytes: if either completion
	// decodes, the prefix is viable.
	if r, size := utf8.DecodeRune(full); r != utf8.RuneError || size == need {
		return true
	}
	for i := len(p); i < need; i++ {
		full[i] = 0xBF
	}
	r, size := utf8.DecodeRune(full)
	return r != utf8.RuneError || size == need
}

func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
