package eval

import (
	"math"
	"strings"
	"unicode/utf8"

	"github.com/qwen3-lora/qwen3-server/tools/eval/metrics"
)

// ModelResult is one model's evaluation.
type ModelResult struct {
	Name        string           `json:"name"`
	Samples     int              `json:"samples"`
	Scores      metrics.Scores   `json:"scores"`
	PerSample   []metrics.Scores `json:"-"`
	Predictions []*Prediction    `json:"-"`
	// RuntimeSec is the wall time of the run (all models interleaved in
	// it); 0 when scoring a file.
	RuntimeSec float64 `json:"runtime_s"`
	// Reasoning statistics: items run in thinking mode and not, the mean
	// reasoning length in characters of each, and the thinking items whose
	// answer leaked into the reasoning (see Leaked).
	ThinkingItems       int     `json:"thinking_items"`
	NonThinkingItems    int     `json:"non_thinking_items"`
	ReasoningChars      float64 `json:"reasoning_chars_mean_thinking"`
	ReasoningCharsNoThk float64 `json:"reasoning_chars_mean_non_thinking"`
	ReasoningTokens     float64 `json:"reasoning_tokens_mean_thinking"`
	LeakedItems         int     `json:"answer_leaked_into_reasoning"`
	EmptyAnswers        int     `json:"empty_answers"`
}

// Score scores a model's predictions (in item order) in the given mode.
func Score(name string, preds []*Prediction, mode ScoreMode) (*ModelResult, error) {
	seg, err := metrics.Default()
	if err != nil {
		return nil, err
	}
	r := &ModelResult{Name: name, Samples: len(preds), Predictions: preds}
	var thinkChars, plainChars, thinkToks float64
	for _, p := range preds {
		p.setScored(mode)
		r.PerSample = append(r.PerSample, seg.Score(p.Predict, p.Label))
		n := float64(utf8.RuneCountInString(p.Reasoning))
		if p.Thinking {
			r.ThinkingItems++
			thinkChars += n
			thinkToks += float64(p.ReasoningTokens)
			if Leaked(p.Reasoning, p.Answer) {
				r.LeakedItems++
			}
		} else {
			r.NonThinkingItems++
			plainChars += n
		}
		if strings.TrimSpace(p.Answer) == "" {
			r.EmptyAnswers++
		}
	}
	r.Scores = metrics.Average(r.PerSample)
	r.ReasoningChars, r.ReasoningTokens = mean(thinkChars, r.ThinkingItems), mean(thinkToks, r.ThinkingItems)
	r.ReasoningCharsNoThk = mean(plainChars, r.NonThinkingItems)
	return r, nil
}

func mean(sum float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// Leaked reports whether the answer leaked into the reasoning: the model
// reasoned but left no answer after it (the reply stayed inside <think>,
// typically cut off by max tokens), or wrote its whole answer, verbatim up
// to whitespace, inside the reasoning already.
func Leaked(reasoning, answer string) bool {
	r, a := squash(reasoning), squash(answer)
	if r == "" {
		return false
	}
	return a == "" || strings.Contains(r, a)
}

func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

// LFResults is predict_results.json: LLaMA-Factory's keys and value
// conventions (the averages as they are; runtime rounded to 4 decimals and
// throughput to 3, as transformers' speed_metrics does).
func (r *ModelResult) LFResults() map[string]float64 {
	out := map[string]float64{
		"predict_bleu-4":  r.Scores.BLEU4,
		"predict_rouge-1": r.Scores.Rouge1,
		"predict_rouge-2": r.Scores.Rouge2,
		"predict_rouge-l": r.Scores.RougeL,
	}
	if r.RuntimeSec > 0 {
		out["predict_runtime"] = round(r.RuntimeSec, 4)
		out["predict_samples_per_second"] = round(float64(r.Samples)/r.RuntimeSec, 3)
	}
	return out
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// WriteResults writes r's predict_results.json.
func WriteResults(path string, r *ModelResult) error { return writeJSON(path, r.LFResults()) }
