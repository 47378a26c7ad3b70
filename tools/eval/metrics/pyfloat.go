package metrics

import (
	"math"
	"strconv"
	"unicode"
)

// pyIsSpace is CPython's str.isspace for one code point, which is also what
// Python's re `\s`, str.split() and str.rstrip() use: Unicode White_Space
// (Go's unicode.IsSpace) plus U+001C..U+001F, which CPython counts as
// whitespace (bidirectional class B/S) and Go does not.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyRound is Python's round(x, digits) for a float: the decimal nearest to
// the exact binary value, ties to even, read back as a float. strconv's
// fixed-precision formatting rounds the exact value the same way, and
// ParseFloat reads back correctly rounded, as CPython's dtoa does.
func pyRound(x float64, digits int) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	v, err := strconv.ParseFloat(strconv.FormatFloat(x, 'f', digits, 64), 64)
	if err != nil {
		// FormatFloat's output of a finite float always parses.
		panic(err)
	}
	return v
}

// pyFsum is CPython's math.fsum (Shewchuk's exact partial sums, then the
// half-even correction across partials) for finite inputs, which is all
// nltk's BLEU gives it: the logs of positive precisions.
func pyFsum(xs []float64) float64 {
	partials := make([]float64, 0, len(xs))
	for _, x := range xs {
		i := 0
		for _, y := range partials {
			if math.Abs(x) < math.Abs(y) {
				x, y = y, x
			}
			hi := x + y
			lo := y - (hi - x)
			if lo != 0 {
				partials[i] = lo
				i++
			}
			x = hi
		}
		partials = partials[:i]
		if x != 0 {
			partials = append(partials, x)
		}
	}
	n := len(partials)
	if n == 0 {
		return 0
	}
	n--
	hi := partials[n]
	lo := 0.0
	for n > 0 {
		x := hi
		n--
		y := partials[n]
		hi = x + y
		lo = y - (hi - x)
		if lo != 0 {
			break
		}
	}
	if n > 0 && ((lo < 0 && partials[n-1] < 0) || (lo > 0 && partials[n-1] > 0)) {
		y := lo * 2
		x := hi + y
		if y == x-hi {
			hi = x
		}
	}
	return hi
}
