package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/go-ego/gse/hmm"
)

// The reference is LLaMA-Factory's own stack run by Debian's Python:
// testdata/reference.py with python3-jieba 0.42.1 and python3-nltk 3.8 (the
// Makefile's metrics-reference target installs them). ROUGE there is a
// transcription of rouge_chinese, which cannot be installed here (see the
// script's docstring).
const python = "/usr/bin/python3"

type sample struct {
	Name  string `json:"name"`
	Pred  string `json:"pred"`
	Label string `json:"label"`
}

type pyScores struct {
	BLEU4  float64 `json:"bleu-4"`
	Rouge1 float64 `json:"rouge-1"`
	Rouge2 float64 `json:"rouge-2"`
	RougeL float64 `json:"rouge-l"`
}

func (p pyScores) scores() Scores { return Scores(p) }

type reference struct {
	Versions   map[string]string `json:"versions"`
	Dictionary struct {
		Path  string `json:"path"`
		Total int64  `json:"total"`
		Keys  int    `json:"keys"`
	} `json:"dictionary"`
	IsSpace []rune `json:"isspace"`
	Samples []struct {
		HypTokens []string `json:"hyp_tokens"`
		RefTokens []string `json:"ref_tokens"`
		Raw       pyScores `json:"raw"`
		Rounded   pyScores `json:"rounded"`
	} `json:"samples"`
	Average pyScores             `json:"average"`
	Viterbi [][2]json.RawMessage `json:"viterbi"`
	Round   []float64            `json:"round"`
	Fsum    []float64            `json:"fsum"`
	Custom  [][]string           `json:"custom"`
}

type request struct {
	Samples []sample    `json:"samples"`
	Viterbi []string    `json:"viterbi"`
	Round   []float64   `json:"round"`
	Fsum    [][]float64 `json:"fsum"`
	Custom  *customDict `json:"custom,omitempty"`
}

// customDict asks the reference to cut texts with jieba.Tokenizer over a
// dictionary of the given lines.
type customDict struct {
	Dict  []string `json:"dict"`
	Texts []string `json:"texts"`
}

// tieDict makes routes whose log probabilities are equal to the bit:
// 甲乙+丙 and 甲+乙丙 add the same two terms in the other order, so jieba's
// max over (value, end) decides by the end alone (the longer first word).
// 丁 is unknown, 戊己 a word with count 0 is absent as a word, and 庚辛 is
// a word whose characters are not, so its run goes to the HMM or not.
var tieDict = customDict{
	Dict:  []string{"甲乙 7 n", "丙 3 n", "甲 3 n", "乙丙 7 n", "庚辛 5 n", "壬 2 n", "癸 2 n", "壬癸 0 n"},
	Texts: []string{"甲乙丙", "甲乙丙甲乙丙", "丁甲乙丙丁", "甲乙丙庚辛", "壬癸", "丁丁丁", "壬癸甲乙丙x1", "甲 乙丙"},
}

var (
	refOnce sync.Once
	refReq  request
	refOut  reference
	refErr  error
)

// ref runs the Python reference once for all tests, over the committed corpus
// plus generated samples.
func ref(t testing.TB) (request, reference) {
	t.Helper()
	refOnce.Do(func() {
		refReq, refErr = buildRequest()
		if refErr != nil {
			return
		}
		in, err := json.Marshal(refReq)
		if err != nil {
			refErr = err
			return
		}
		tmp, err := os.MkdirTemp("", "metrics-ref")
		if err != nil {
			refErr = err
			return
		}
		defer os.RemoveAll(tmp)
		cmd := exec.Command(python, filepath.Join("testdata", "reference.py"))
		cmd.Stdin = bytes.NewReader(in)
		// jieba writes its prefix-dictionary cache to the temp folder.
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			refErr = fmt.Errorf("%s testdata/reference.py: %v\n%s\n(it needs Debian's python3-jieba and python3-nltk: make metrics-reference)", python, err, stderr.String())
			return
		}
		refErr = json.Unmarshal(out, &refOut)
	})
	if refErr != nil {
		t.Fatal(refErr)
	}
	return refReq, refOut
}

func readCorpus() ([]sample, error) {
	f, err := os.Open(filepath.Join("testdata", "corpus.jsonl"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []sample
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, fmt.Errorf("corpus.jsonl: %w", err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// buildRequest is the corpus, then 400 generated pairs (fixed seed): random
// strings over the corpus's own characters and words plus whitespace,
// punctuation and the characters jieba treats specially, half of them paired
// with an edited copy so that they share n-grams.
func buildRequest() (request, error) {
	corpus, err := readCorpus()
	if err != nil {
		return request{}, err
	}
	var pool []rune
	var pieces []string
	seen := map[rune]bool{}
	for _, s := range corpus {
		for _, text := range []string{s.Pred, s.Label} {
			for _, r := range text {
				if !seen[r] {
					seen[r] = true
					pool = append(pool, r)
				}
			}
			rs := []rune(text)
			for i := 0; i+4 <= len(rs); i += 3 {
				pieces = append(pieces, string(rs[i:i+1+i%4]))
			}
		}
	}
	pool = append(pool, []rune(" \t\n\r\u3000\u00a0\u001c\u0085+#&._%-…“”‘’。。！？?......")...)
	rng := rand.New(rand.NewPCG(20250101, 15))
	gen := func() string {
		var b strings.Builder
		for n := rng.IntN(40); n > 0; n-- {
			if rng.IntN(3) == 0 {
				b.WriteRune(pool[rng.IntN(len(pool))])
			} else {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
		}
		return b.String()
	}
	edit := func(s string) string {
		rs := []rune(s)
		for n := rng.IntN(5); n > 0 && len(rs) > 0; n-- {
			i := rng.IntN(len(rs))
			if rng.IntN(2) == 0 {
				rs = append(rs[:i], rs[i+1:]...)
			} else {
				rs = append(rs[:i], append([]rune(pieces[rng.IntN(len(pieces))]), rs[i:]...)...)
			}
		}
		return string(rs)
	}
	req := request{Samples: corpus, Custom: &tieDict}
	for i := 0; i < 400; i++ {
		p := gen()
		l := gen()
		if i%2 == 0 {
			l = edit(p)
		}
		req.Samples = append(req.Samples, sample{Name: fmt.Sprintf("generated-%d", i), Pred: p, Label: l})
	}
	// finalseg's Viterbi on every run of [\u4E00-\u9FD5] in the samples.
	for _, s := range req.Samples {
		for _, text := range []string{s.Pred, s.Label} {
			req.Viterbi = append(req.Viterbi, strings.FieldsFunc(text, func(r rune) bool { return !isFinalsegHan(r) })...)
		}
	}
	// Python's round on scores ×100, on exact ties k/2^n (half-even), and
	// on values next to them.
	for i := 0; i < 2000; i++ {
		req.Round = append(req.Round, rng.Float64()*100)
	}
	for _, x := range []float64{0.03125, 0.09375, 1.15625, 2.5 / 16, 99.99995, 0.00005, 12.34565, 50.00015, 66.66665} {
		req.Round = append(req.Round, x, math.Nextafter(x, 0), math.Nextafter(x, 200))
	}
	for i := 0; i < 500; i++ {
		xs := make([]float64, 1+rng.IntN(6))
		for j := range xs {
			xs[j] = -rng.ExpFloat64() * math.Pow(10, float64(rng.IntN(20)-10))
			if rng.IntN(4) == 0 {
				xs[j] = -xs[j]
			}
		}
		req.Fsum = append(req.Fsum, xs)
	}
	return req, nil
}

func TestReferenceVersions(t *testing.T) {
	_, r := ref(t)
	// The parity below is proven against these versions, LLaMA-Factory's.
	if r.Versions["jieba"] != "0.42.1" {
		t.Errorf("reference jieba is %q, want 0.42.1", r.Versions["jieba"])
	}
	if r.Versions["nltk"] != "3.8" {
		t.Errorf("reference nltk is %q, want 3.8 (Debian bookworm's)", r.Versions["nltk"])
	}
}

// TestDictionaryIsJiebas: gojieba's file with dict_delta.txt applied is, line
// for line, the dict.txt that the reference jieba loads, and the prefix
// dictionary built from it has jieba's total and number of keys.
func TestDictionaryIsJiebas(t *testing.T) {
	_, r := ref(t)
	seg := mustDefault(t)
	if seg.total != r.Dictionary.Total || len(seg.freq) != r.Dictionary.Keys {
		t.Errorf("prefix dictionary: total %d, %d keys; jieba: total %d, %d keys",
			seg.total, len(seg.freq), r.Dictionary.Total, r.Dictionary.Keys)
	}
	want, err := readDictFile(r.Dictionary.Path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := loadDictLines(gojiebaDictPath())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		n := 0
		for l, c := range want {
			if got[l] != c && n < 10 {
				t.Errorf("%q %d: %d times, jieba's dict.txt has it %d times", l.word, l.freq, got[l], c)
				n++
			}
		}
		for l, c := range got {
			if want[l] == 0 && n < 20 {
				t.Errorf("%q %d: %d times, jieba's dict.txt has none", l.word, l.freq, c)
				n++
			}
		}
	}
}

func TestIsSpaceIsPythons(t *testing.T) {
	_, r := ref(t)
	want := map[rune]bool{}
	for _, c := range r.IsSpace {
		want[c] = true
	}
	for c := rune(0); c <= utf8.MaxRune; c++ {
		if pyIsSpace(c) != want[c] {
			t.Errorf("pyIsSpace(%U) = %v, Python's isspace %v", c, pyIsSpace(c), want[c])
		}
	}
}

func TestViterbiIsFinalsegs(t *testing.T) {
	req, r := ref(t)
	if len(r.Viterbi) != len(req.Viterbi) {
		t.Fatalf("%d Viterbi results for %d strings", len(r.Viterbi), len(req.Viterbi))
	}
	hmmOnce.Do(func() { hmm.LoadModel() })
	for i, text := range req.Viterbi {
		var prob float64
		var path []string
		if err := json.Unmarshal(r.Viterbi[i][0], &prob); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(r.Viterbi[i][1], &path); err != nil {
			t.Fatal(err)
		}
		gotProb, gotPath := hmm.Viterbi([]rune(text), bmes)
		if gotProb != prob || string(gotPath) != strings.Join(path, "") {
			t.Errorf("viterbi(%q) = %v %s, jieba %v %s", text, gotProb, gotPath, prob, strings.Join(path, ""))
		}
	}
}

func TestSegmentIsJiebaCut(t *testing.T) {
	req, r := ref(t)
	seg := mustDefault(t)
	bad := 0
	for i, s := range req.Samples {
		for _, c := range []struct {
			text string
			want []string
		}{{s.Pred, r.Samples[i].HypTokens}, {s.Label, r.Samples[i].RefTokens}} {
			got := seg.Cut(c.text)
			if !slices.Equal(got, c.want) {
				bad++
				t.Errorf("%s: Cut(%q)\n got %q\nwant %q", s.Name, c.text, got, c.want)
			}
		}
	}
	t.Logf("%d texts segmented, %d differ from jieba.cut", 2*len(req.Samples), bad)
}

// TestSegmentTiesAreJiebas cuts tieDict's texts with a segmenter over the same
// small dictionary.
func TestSegmentTiesAreJiebas(t *testing.T) {
	req, r := ref(t)
	lines := map[dictLine]int{}
	err := readDictLines(strings.NewReader(strings.Join(req.Custom.Dict, "\n")), "tieDict", false,
		func(l dictLine) error { lines[l]++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	seg := newSegmenter(lines)
	if len(r.Custom) != len(req.Custom.Texts) {
		t.Fatalf("%d results for %d texts", len(r.Custom), len(req.Custom.Texts))
	}
	for i, text := range req.Custom.Texts {
		if got := seg.Cut(text); !slices.Equal(got, r.Custom[i]) {
			t.Errorf("Cut(%q) = %q, jieba %q", text, got, r.Custom[i])
		}
	}
}

// TestScoresAreLlamaFactorys compares every sample's scores with the
// reference's before rounding (to 4 ulps: the same operations in the same
// order, but Go's math.Log and math.Exp, which may differ from the C
// library's that CPython calls in the last bit) and after rounding, and
// the averages, exactly.
func TestScoresAreLlamaFactorys(t *testing.T) {
	req, r := ref(t)
	seg := mustDefault(t)
	if len(r.Samples) != len(req.Samples) {
		t.Fatalf("%d reference results for %d samples", len(r.Samples), len(req.Samples))
	}
	var all []Scores
	for i, s := range req.Samples {
		raw := seg.rawScores(s.Pred, s.Label)
		if want := r.Samples[i].Raw.scores(); !ulpsClose(raw, want, 4) {
			t.Errorf("%s: raw scores\n got %+v\nwant %+v\n(pred %q, label %q)", s.Name, raw, want, s.Pred, s.Label)
		}
		got := seg.Score(s.Pred, s.Label)
		if want := r.Samples[i].Rounded.scores(); got != want {
			t.Errorf("%s: scores\n got %+v\nwant %+v", s.Name, got, want)
		}
		all = append(all, got)
	}
	if got, want := Average(all), r.Average.scores(); got != want {
		t.Errorf("average\n got %+v\nwant %+v", got, want)
	}
	t.Logf("%d samples; average %+v", len(all), Average(all))
}

func TestRoundIsPythons(t *testing.T) {
	req, r := ref(t)
	for i, x := range req.Round {
		if got := pyRound(x, 4); got != r.Round[i] {
			t.Errorf("pyRound(%v, 4) = %v, Python's round %v", x, got, r.Round[i])
		}
	}
}

func TestFsumIsPythons(t *testing.T) {
	req, r := ref(t)
	for i, xs := range req.Fsum {
		if got := pyFsum(xs); got != r.Fsum[i] {
			t.Errorf("pyFsum(%v) = %v, math.fsum %v", xs, got, r.Fsum[i])
		}
	}
}

// TestConcurrentUse: the package-level functions share one segmenter, which
// gives every goroutine the same result as a serial run.
func TestConcurrentUse(t *testing.T) {
	corpus, err := readCorpus()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]Scores, len(corpus))
	for i, s := range corpus {
		if want[i], err = Score(s.Pred, s.Label); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*len(corpus))
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range corpus {
				s := corpus[(i+g)%len(corpus)]
				got, err := Score(s.Pred, s.Label)
				if err != nil || got != want[(i+g)%len(corpus)] {
					errs <- fmt.Sprintf("%s: %+v, %v", s.Name, got, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestDictionaryErrors(t *testing.T) {
	var de *DictionaryError
	_, err := LoadSegmenter(filepath.Join(t.TempDir(), "missing.txt"))
	if !errors.As(err, &de) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want a *DictionaryError wrapping ErrNotExist", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(bad, []byte("一 3 m\n二 x m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadSegmenter(bad)
	if !errors.As(err, &de) || de.Line != 2 {
		t.Errorf("bad count: %v, want a *DictionaryError at line 2", err)
	}
	// A dictionary without the words that the change removes is not
	// gojieba's and is refused rather than silently used.
	small := filepath.Join(t.TempDir(), "small.txt")
	if err := os.WriteFile(small, []byte("一 3 m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = LoadSegmenter(small); !errors.As(err, &de) || de.Path != "dict_delta.txt" {
		t.Errorf("foreign dictionary: %v, want a *DictionaryError on dict_delta.txt", err)
	}
}

func mustDefault(t testing.TB) *Segmenter {
	t.Helper()
	s, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func BenchmarkScore(b *testing.B) {
	corpus, err := readCorpus()
	if err != nil {
		b.Fatal(err)
	}
	var long sample
	for _, s := range corpus {
		if s.Name == "long-hypertension" {
			long = s
		}
	}
	if utf8.RuneCountInString(long.Pred) < 500 {
		b.Fatalf("the long sample has %d characters, want 500", utf8.RuneCountInString(long.Pred))
	}
	seg := mustDefault(b)
	b.ReportAllocs()
	for b.Loop() {
		seg.Score(long.Pred, long.Label)
	}
}

// ulpsClose reports whether every score of a is within n ulps of b's.
func ulpsClose(a, b Scores, n uint64) bool {
	close := func(x, y float64) bool {
		if x == y {
			return true
		}
		if math.Signbit(x) != math.Signbit(y) {
			return false
		}
		d := int64(math.Float64bits(x)) - int64(math.Float64bits(y))
		return uint64(max(d, -d)) <= n
	}
	return close(a.BLEU4, b.BLEU4) && close(a.Rouge1, b.Rouge1) && close(a.Rouge2, b.Rouge2) && close(a.RougeL, b.RougeL)
}
