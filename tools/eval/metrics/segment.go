package metrics

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-ego/gse/hmm"
)

// dictDelta turns gojieba's copy of the dictionary into jieba 0.42.1's
// dict.txt exactly (see the file's header).
//
//go:embed dict_delta.txt
var dictDelta string

// DictionaryError says why jieba's dictionary could not be loaded.
type DictionaryError struct {
	Path string // the file, or "dict_delta.txt" for the embedded change
	Line int    // 1-based; 0 when the file as a whole failed
	Err  error
}

func (e *DictionaryError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("metrics: jieba dictionary %s line %d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("metrics: jieba dictionary %s: %v", e.Path, e.Err)
}

func (e *DictionaryError) Unwrap() error { return e.Err }

// dictEntry is one key of jieba's prefix dictionary (Tokenizer.FREQ): a
// word with its count, or a prefix of a word with count 0.
type dictEntry struct {
	freq int64
	// logFreq is log(freq or 1), the term jieba's calc adds for the word.
	logFreq float64
}

// Segmenter is jieba 0.42.1's default jieba.cut(text) (dictionary mode, HMM
// for unknown words) over jieba's own dictionary and HMM. It is read-only
// after loading and safe for concurrent use.
type Segmenter struct {
	freq     map[string]dictEntry
	logTotal float64 // log(Tokenizer.total)
	total    int64
}

var (
	defaultOnce sync.Once
	defaultSeg  *Segmenter
	defaultErr  error
	hmmOnce     sync.Once
)

// Default returns the process's segmenter, loading the dictionary (about
// 350,000 words, half a million keys with their prefixes) on the first call.
func Default() (*Segmenter, error) {
	defaultOnce.Do(func() {
		var lines map[dictLine]int
		if lines, defaultErr = embeddedDictLines(); defaultErr == nil {
			defaultSeg = newSegmenter(lines)
		}
	})
	return defaultSeg, defaultErr
}

// embeddedDict is gojieba v1.4.6's deps/cppjieba/dict/jieba.dict.utf8
// (cppjieba's copy of jieba's dictionary; jieba, cppjieba and gojieba are
// MIT-licensed, which allows shipping it), gzipped (1.9 MB of 5 MB). It is
// compiled in so that a shipped binary segments the same on any machine:
// gojieba finds its file through the module cache's source path, which
// exists only where the binary was built. TestEmbeddedDictIsGojiebas checks
// it byte for byte against the module's file.
//
//go:embed jieba.dict.utf8.gz
var embeddedDict []byte

const embeddedDictName = "jieba.dict.utf8.gz (embedded)"

// embeddedDictLines is the embedded dictionary with dict_delta.txt applied.
func embeddedDictLines() (map[dictLine]int, error) {
	zr, err := gzip.NewReader(bytes.NewReader(embeddedDict))
	if err != nil {
		return nil, &DictionaryError{Path: embeddedDictName, Err: err}
	}
	counts, err := readDict(zr, embeddedDictName)
	if err != nil {
		return nil, err
	}
	return applyDelta(counts, embeddedDictName)
}

// Segment is Default().Cut(text).
func Segment(text string) ([]string, error) {
	s, err := Default()
	if err != nil {
		return nil, err
	}
	return s.Cut(text), nil
}

// LoadSegmenter reads a dictionary in jieba's format ("word count [tag]" per
// line) from path and applies the embedded change that makes gojieba's file
// jieba's. The Segmenter only needs to be loaded once: use Default.
func LoadSegmenter(path string) (*Segmenter, error) {
	lines, err := loadDictLines(path)
	if err != nil {
		return nil, err
	}
	return newSegmenter(lines), nil
}

// loadDictLines is the multiset of lines of the dictionary at path with the
// embedded change applied.
func loadDictLines(path string) (map[dictLine]int, error) {
	counts, err := readDictFile(path)
	if err != nil {
		return nil, err
	}
	return applyDelta(counts, path)
}

// applyDelta applies dict_delta.txt to the lines of the dictionary name.
func applyDelta(counts map[dictLine]int, name string) (map[dictLine]int, error) {
	err := readDictLines(strings.NewReader(dictDelta), "dict_delta.txt", true, func(l dictLine) error {
		k := dictLine{word: l.word, freq: l.freq}
		switch l.op {
		case '+':
			counts[k]++
		case '-':
			if counts[k] == 0 {
				return fmt.Errorf("removes %q %d, which %s does not have", l.word, l.freq, name)
			}
			counts[k]--
			if counts[k] == 0 {
				delete(counts, k)
			}
		default:
			return errors.New("a change line starts with + or -")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// readDictFile is the multiset of lines of a dictionary file.
func readDictFile(path string) (map[dictLine]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &DictionaryError{Path: path, Err: err}
	}
	defer f.Close()
	return readDict(f, path)
}

// readDict is the multiset of lines of a dictionary read from r.
func readDict(r io.Reader, name string) (map[dictLine]int, error) {
	counts := map[dictLine]int{}
	if err := readDictLines(r, name, false, func(l dictLine) error { counts[l]++; return nil }); err != nil {
		return nil, err
	}
	return counts, nil
}

// dictLine is one dictionary line as jieba's gen_pfdict reads it: the first
// two space-separated fields of the stripped line.
type dictLine struct {
	op   byte // '+' or '-' in the change file, 0 in a dictionary
	word string
	freq int64
}

// readDictLines calls add for each line; in a change file (delta) the first
// byte is the operation, and blank lines and '#' comments are skipped.
func readDictLines(r io.Reader, name string, delta bool, add func(dictLine) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		// gen_pfdict strips the line as bytes: ASCII whitespace only.
		line := strings.Trim(sc.Text(), " \t\n\r\v\f")
		var l dictLine
		if delta {
			if line == "" || line[0] == '#' {
				continue
			}
			l.op, line = line[0], line[1:]
		}
		fields := strings.Split(line, " ")
		if len(fields) < 2 {
			return &DictionaryError{Path: name, Line: n, Err: errors.New("want \"word count [tag]\"")}
		}
		freq, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil || freq < 0 {
			return &DictionaryError{Path: name, Line: n, Err: fmt.Errorf("bad count %q", fields[1])}
		}
		l.word, l.freq = fields[0], freq
		if err := add(l); err != nil {
			return &DictionaryError{Path: name, Line: n, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		return &DictionaryError{Path: name, Err: err}
	}
	return nil
}

// newSegmenter builds jieba's prefix dictionary (gen_pfdict): every word with
// its count (a word listed twice keeps one count, and both add to the total),
// and every prefix of a word that is not itself a word with count 0.
func newSegmenter(lines map[dictLine]int) *Segmenter {
	s := &Segmenter{freq: make(map[string]dictEntry, 2*len(lines))}
	for l, n := range lines {
		s.total += l.freq * int64(n)
		// jieba's file never lists one word with two counts; if a custom
		// dictionary did, jieba would keep the last line's, which a multiset
		// cannot tell: the larger is kept so that loading is deterministic.
		if e, ok := s.freq[l.word]; !ok || l.freq > e.freq {
			s.freq[l.word] = dictEntry{freq: l.freq}
		}
	}
	for w := range s.freq {
		for i := range w {
			if i == 0 {
				continue
			}
			if _, ok := s.freq[w[:i]]; !ok {
				s.freq[w[:i]] = dictEntry{}
			}
		}
	}
	for w, e := range s.freq {
		if e.freq > 0 {
			e.logFreq = math.Log(float64(e.freq))
			s.freq[w] = e
		}
	}
	s.logTotal = math.Log(float64(s.total))
	hmmOnce.Do(func() { hmm.LoadModel() })
	return s
}

// isHanDefault is jieba's re_han_default class [\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]:
// the characters that the dictionary and the HMM segment; every other
// character is a token of its own.
func isHanDefault(r rune) bool {
	switch {
	case r >= 0x4E00 && r <= 0x9FD5, r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("+#&._%-", r)
}

// Cut is jieba.cut(text) (Tokenizer.cut with cut_all=False, HMM=True): runs of
// re_han_default characters go through __cut_DAG; in between, "\r\n" and
// each whitespace character (re_skip_default `(\r\n|\s)`) are tokens, and
// every other character is a token.
func (s *Segmenter) Cut(text string) []string {
	if !utf8.ValidString(text) {
		// Python text is always valid; a Go string's stray bytes become
		// U+FFFD each, as a decoder with errors="replace" would make them.
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	var out []string
	for len(text) > 0 {
		r, size := utf8.DecodeRuneInString(text)
		if isHanDefault(r) {
			end := size
			for end < len(text) {
				r, n := utf8.DecodeRuneInString(text[end:])
				if !isHanDefault(r) {
					break
				}
				end += n
			}
			out = s.cutDAG(text[:end], out)
			text = text[end:]
			continue
		}
		if strings.HasPrefix(text, "\r\n") {
			size = 2
		}
		out = append(out, text[:size])
		text = text[size:]
	}
	return out
}

// cutDAG is Tokenizer.__cut_DAG: the most probable route through the word
// graph; runs of single characters on it that are not one dictionary word go
// to the HMM (finalseg.cut).
func (s *Segmenter) cutDAG(blk string, out []string) []string {
	// off[i] is the byte offset of the i-th character; off[n] = len(blk).
	off := make([]int, 0, len(blk)+1)
	for i := range blk {
		off = append(off, i)
	}
	n := len(off)
	off = append(off, len(blk))

	// get_DAG and calc together: route[k] is the best (log prob, end) from
	// character k, computed right to left. For each k, the candidate ends are
	// the i with blk[k:i+1] a word of count > 0 while blk[k:i+1] is a key of
	// the prefix dictionary, or k itself when there is none.
	type step struct {
		logp float64
		end  int
	}
	route := make([]step, n+1)
	for k := n - 1; k >= 0; k-- {
		best := step{}
		found := false
		consider := func(x int, logFreq float64) {
			v := logFreq - s.logTotal + route[x+1].logp
			// max over (value, x) tuples: ties go to the larger x, and
			// candidates come in increasing x.
			if !found || v >= best.logp {
				best, found = step{v, x}, true
			}
		}
		for i := k; i < n; i++ {
			e, ok := s.freq[blk[off[k]:off[i+1]]]
			if !ok {
				break
			}
			if e.freq > 0 {
				consider(i, e.logFreq)
			}
		}
		if !found {
			// log(FREQ.get(c) or 1) = 0 for a character that is no word.
			consider(k, 0)
		}
		route[k] = best
	}

	flush := func(buf string) {
		switch {
		case buf == "":
		case utf8.RuneCountInString(buf) == 1:
			out = append(out, buf)
		case s.freq[buf].freq == 0:
			out = hmmCut(buf, out)
		default:
			for _, c := range buf {
				out = append(out, string(c))
			}
		}
	}
	bufStart, bufEnd := 0, 0 // byte range of the pending single characters
	for x := 0; x < n; {
		y := route[x].end + 1
		if y-x == 1 {
			if bufStart == bufEnd {
				bufStart = off[x]
			}
			bufEnd = off[y]
		} else {
			flush(blk[bufStart:bufEnd])
			bufStart, bufEnd = 0, 0
			out = append(out, blk[off[x]:off[y]])
		}
		x = y
	}
	flush(blk[bufStart:bufEnd])
	return out
}

// hmmCut is jieba.finalseg.cut: runs of [\u4E00-\u9FD5] are labelled by the
// BMES Viterbi over jieba's HMM (gse's hmm package carries jieba's
// probabilities and the same max-with-ties rule); the rest is split by
// re_skip `([a-zA-Z0-9]+(?:\.\d+)?%?)` into its matches and the pieces
// between them. (Python's \d is any Unicode digit, but text here comes from
// re_han_default runs, whose only digits are ASCII.)
func hmmCut(text string, out []string) []string {
	for len(text) > 0 {
		r, size := utf8.DecodeRuneInString(text)
		end := size
		if isFinalsegHan(r) {
			for end < len(text) {
				r, n := utf8.DecodeRuneInString(text[end:])
				if !isFinalsegHan(r) {
					break
				}
				end += n
			}
			out = viterbiCut(text[:end], out)
		} else {
			for end < len(text) {
				r, n := utf8.DecodeRuneInString(text[end:])
				if isFinalsegHan(r) {
					break
				}
				end += n
			}
			out = skipSplit(text[:end], out)
		}
		text = text[end:]
	}
	return out
}

func isFinalsegHan(r rune) bool { return r >= 0x4E00 && r <= 0x9FD5 }

func isASCIIAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// skipSplit appends the non-empty pieces of re_skip.split(text).
func skipSplit(text string, out []string) []string {
	last := 0
	for i := 0; i < len(text); {
		if !isASCIIAlnum(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isASCIIAlnum(text[j]) {
			j++
		}
		// (?:\.\d+)? then %?
		if j+1 < len(text) && text[j] == '.' && text[j+1] >= '0' && text[j+1] <= '9' {
			j += 2
			for j < len(text) && text[j] >= '0' && text[j] <= '9' {
				j++
			}
		}
		if j < len(text) && text[j] == '%' {
			j++
		}
		if i > last {
			out = append(out, text[last:i])
		}
		out = append(out, text[i:j])
		last, i = j, j
	}
	if last < len(text) {
		out = append(out, text[last:])
	}
	return out
}

var bmes = []byte("BMES")

// viterbiCut is finalseg.__cut: a word ends at each E or S label; a trailing
// B/M run is one word.
func viterbiCut(text string, out []string) []string {
	runes := []rune(text)
	_, labels := hmm.Viterbi(runes, bmes)
	begin, next := 0, 0
	for i, r := range runes {
		switch labels[i] {
		case 'B':
			begin = i
		case 'E':
			out = append(out, string(runes[begin:i+1]))
			next = i + 1
		case 'S':
			out = append(out, string(r))
			next = i + 1
		}
	}
	if next < len(runes) {
		out = append(out, string(runes[next:]))
	}
	return out
}
