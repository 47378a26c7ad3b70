package metrics

import "math"

// bleu4 is nltk 3.8's
//
//	sentence_bleu([list(label)], list(pred), smoothing_function=SmoothingFunction().method3)
//
// (nltk/translate/bleu_score.py): one reference, weights (0.25,)*4,
// auto_reweigh off, over characters (code points).
func bleu4(pred, label string) float64 {
	hyp, ref := runeBounds(pred), runeBounds(label)
	hypLen, refLen := len(hyp)-1, len(ref)-1
	var num, den [4]int
	for n := 1; n <= 4; n++ {
		num[n-1], den[n-1] = modifiedPrecision(pred, hyp, label, ref, n)
	}
	// corpus_bleu: no unigram match at all is 0, before any smoothing.
	if num[0] == 0 {
		return 0
	}
	// brevity_penalty(closest_ref_length, hyp_len); hypLen > 0 here.
	bp := 1.0
	if hypLen <= refLen {
		bp = math.Exp(1 - float64(refLen)/float64(hypLen))
	}
	// method3 (NIST geometric smoothing): the k-th precision with no match
	// becomes 1/(2^k * denominator). A Fraction's float is its numerator
	// divided by its denominator, correctly rounded, as float64 division is.
	var terms [4]float64
	k := 1
	for i := range terms {
		var p float64
		if num[i] == 0 {
			p = 1 / float64((1<<k)*den[i])
			k++
		} else {
			p = float64(num[i]) / float64(den[i])
		}
		// float64(...) rounds the product here, so the compiler may not fuse
		// it with fsum's additions (CPython rounds each operation).
		terms[i] = float64(0.25 * math.Log(p))
	}
	return bp * math.Exp(pyFsum(terms[:]))
}

// runeBounds returns the byte offset of each code point of s and len(s), so
// that s[b[i]:b[i+n]] is the i-th character n-gram.
func runeBounds(s string) []int {
	b := make([]int, 0, len(s)+1)
	for i := range s {
		b = append(b, i)
	}
	return append(b, len(s))
}

// modifiedPrecision is nltk's modified_precision for one reference: the
// hypothesis n-grams' counts clipped by the reference's, over the number of
// hypothesis n-grams (at least 1).
func modifiedPrecision(hyp string, hb []int, ref string, rb []int, n int) (num, den int) {
	counts := ngramCounts(hyp, hb, n)
	if len(counts) == 0 {
		return 0, 1
	}
	refCounts := ngramCounts(ref, rb, n)
	for g, c := range counts {
		num += min(c, refCounts[g])
		den += c
	}
	return num, max(den, 1)
}

// ngramCounts counts the character n-grams of s (b from runeBounds); the
// substrings are the keys, which for valid UTF-8 is the same as the tuples of
// characters nltk counts.
func ngramCounts(s string, b []int, n int) map[string]int {
	chars := len(b) - 1
	if chars < n {
		return nil
	}
	m := make(map[string]int, chars-n+1)
	for i := 0; i+n <= chars; i++ {
		m[s[b[i]:b[i+n]]]++
	}
	return m
}
