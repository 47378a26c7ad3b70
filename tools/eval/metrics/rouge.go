package metrics

import (
	"regexp"
	"strings"
)

// rouge_chinese's Rouge.cut_sent: a line break after a sentence end
// (。！？?), after an ASCII ellipsis of six dots or a Chinese one (……), and
// after a closing quote that follows a sentence end, unless a quote or
// (for the last rule) more sentence punctuation follows.
var sentenceBreaks = []*regexp.Regexp{
	regexp.MustCompile(`([。！？\?])([^”’])`),
	regexp.MustCompile(`(\.{6})([^”’])`),
	regexp.MustCompile(`(…{2})([^”’])`),
	regexp.MustCompile(`([。！？\?][”’])([^，。！？\?])`),
}

// rougeWords is what rouge_chinese's Rouge._get_scores gives the scorers for
// one text: cut_sent (each substitution over the whole text in turn, then
// rstrip, then split on "\n"); each non-empty piece with its whitespace runs
// made single spaces (" ".join(piece.split())); the pieces' words, split on
// " " (_split_into_words). A piece of only whitespace thus becomes one empty
// word, as it does in Python.
func rougeWords(text string) []string {
	for _, re := range sentenceBreaks {
		text = re.ReplaceAllString(text, "${1}\n${2}")
	}
	text = strings.TrimRightFunc(text, pyIsSpace)
	var words []string
	for _, piece := range strings.Split(text, "\n") {
		if piece == "" {
			continue
		}
		fields := strings.FieldsFunc(piece, pyIsSpace)
		if len(fields) == 0 {
			fields = []string{""}
		}
		words = append(words, fields...)
	}
	return words
}

// rougeN is rouge_score.rouge_n with exclusive=True (Rouge's default): the
// n-grams are sets, so a repeated n-gram counts once on each side.
func rougeN(hyp, ref []string, n int) float64 {
	hs, rs := ngramSet(hyp, n), ngramSet(ref, n)
	overlap := 0
	for g := range hs {
		if _, ok := rs[g]; ok {
			overlap++
		}
	}
	return fScore(len(hs), len(rs), overlap)
}

// ngramSet is _get_ngrams as a set. Words never contain a space (they come
// from splitting on it), so joining n of them with spaces is one-to-one.
func ngramSet(words []string, n int) map[string]struct{} {
	set := map[string]struct{}{}
	for i := 0; i+n <= len(words); i++ {
		set[strings.Join(words[i:i+n], " ")] = struct{}{}
	}
	return set
}

// fScore is f_r_p_rouge_n's F: precision and recall are 0 for an empty side,
// and F = 2PR/(P+R+1e-8), evaluated in Python's order.
func fScore(hypCount, refCount, overlap int) float64 {
	p, r := 0.0, 0.0
	if hypCount > 0 {
		p = float64(overlap) / float64(hypCount)
	}
	if refCount > 0 {
		r = float64(overlap) / float64(refCount)
	}
	return 2.0 * ((p * r) / (p + r + 1e-8))
}

// rougeL is rouge_chinese's rouge_l_summary_level: not pltrdy's union-LCS
// over sentences but the plain LCS of all hypothesis words against all
// reference words (rouge_chinese's README: "official" ROUGE-L), with
// R = LCS/len(ref), P = LCS/len(hyp) and the same F as ROUGE-N.
func rougeL(hyp, ref []string) float64 {
	lcs := lcsLen(ref, hyp)
	r := float64(lcs) / float64(len(ref))
	p := float64(lcs) / float64(len(hyp))
	return 2.0 * ((p * r) / (p + r + 1e-8))
}

// lcsLen is the longest common subsequence's length, in two rows of the
// usual table.
func lcsLen(x, y []string) int {
	prev, cur := make([]int, len(y)+1), make([]int, len(y)+1)
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			if x[i-1] == y[j-1] {
				cur[j] = prev[j-1] + 1
			} else {
				cur[j] = max(prev[j], cur[j-1])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(y)]
}
