package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// File names, LLaMA-Factory's.
const (
	PredictionsFile = "generated_predictions.jsonl"
	ResultsFile     = "predict_results.json"
)

// ScoreMode says which text is scored.
type ScoreMode string

const (
	// ScoreAnswer scores the answers only (the default).
	ScoreAnswer ScoreMode = "answer"
	// ScoreFull scores reasoning and answer together, the think block
	// written out, as LLaMA-Factory's predict does when labels carry it.
	ScoreFull ScoreMode = "full"
)

// ParseScoreMode checks a --score value.
func ParseScoreMode(s string) (ScoreMode, error) {
	switch m := ScoreMode(s); m {
	case ScoreAnswer, ScoreFull:
		return m, nil
	}
	return "", fmt.Errorf("--score %q: want answer or full", s)
}

// Prediction is one line of generated_predictions.jsonl: LLaMA-Factory's
// prompt, predict and label (the scored texts, so that its
// scripts/eval_bleu_rouge.py reproduces the scores), and ours beside them.
type Prediction struct {
	Prompt  string `json:"prompt"`
	Predict string `json:"predict"`
	Label   string `json:"label"`
	// Reasoning is the model's reasoning, LabelReasoning the label's.
	Reasoning      string `json:"reasoning"`
	LabelReasoning string `json:"label_reasoning,omitempty"`
	// Index is the item's position in the evaluated set (the checkpoint's
	// key: lines are appended as items finish, in any order).
	Index            *int   `json:"index,omitempty"`
	Thinking         bool   `json:"thinking,omitempty"`
	PromptTokens     int    `json:"prompt_tokens,omitempty"`
	CompletionTokens int    `json:"completion_tokens,omitempty"`
	ReasoningTokens  int    `json:"reasoning_tokens,omitempty"`
	FinishReason     string `json:"finish_reason,omitempty"`
	// Answer and LabelAnswer are the parsed answers, filled in on reading
	// (not written).
	Answer      string `json:"-"`
	LabelAnswer string `json:"-"`
}

// newPrediction builds the line for an item and the model's output.
func newPrediction(it *Item, reasoning, answer string, mode ScoreMode) *Prediction {
	idx := it.Index
	p := &Prediction{Prompt: it.Prompt(), Reasoning: reasoning, LabelReasoning: it.LabelReasoning, Index: &idx,
		Answer: answer, LabelAnswer: it.Label}
	p.setScored(mode)
	return p
}

func (p *Prediction) setScored(mode ScoreMode) {
	p.Predict, p.Label = p.Answer, p.LabelAnswer
	if mode == ScoreFull {
		p.Predict, p.Label = JoinThink(p.Reasoning, p.Answer), JoinThink(p.LabelReasoning, p.LabelAnswer)
	}
}

// normalize fills Answer and LabelAnswer from a line as written, by us (in
// either score mode) or by LLaMA-Factory, whose predict and label hold the
// think block when the model and the labels have one.
func (p *Prediction) normalize() {
	r, a := SplitThink(p.Predict)
	if r != "" || p.Reasoning == "" {
		p.Reasoning = r
	}
	p.Answer = a
	lr, la := SplitThink(p.Label)
	if lr != "" || p.LabelReasoning == "" {
		p.LabelReasoning = lr
	}
	p.LabelAnswer = la
	if p.Reasoning != "" {
		p.Thinking = true // LLaMA-Factory's files do not say
	}
}

// ReadPredictions reads a generated_predictions.jsonl. A last line cut off
// without its newline (a run killed while writing) is dropped when
// tolerateTail is set; any other bad line is a *LineError.
func ReadPredictions(path string, tolerateTail bool) ([]*Prediction, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*Prediction
	err = eachLine(b, func(n int, line []byte) error {
		var p Prediction
		if err := json.Unmarshal(line, &p); err != nil {
			if tolerateTail && !bytes.HasSuffix(b, []byte("\n")) && n == bytes.Count(b, []byte("\n"))+1 {
				return errStop
			}
			return &LineError{File: path, Line: n, Err: fmt.Errorf("not a prediction: %v", err)}
		}
		p.normalize()
		out = append(out, &p)
		return nil
	})
	return out, err
}

// checkpoint is a model's append-only predictions file during a run.
type checkpoint struct {
	path string
	mu   sync.Mutex
	f    *os.File
	done map[int]*Prediction
}

// openCheckpoint opens dir's predictions file; with resume, the lines
// already there are kept (checked against items: a file from another test
// set is refused) and a torn last line is cut off; without, an existing
// file is an error rather than silently replaced.
func openCheckpoint(dir string, items []*Item, resume bool) (*checkpoint, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &checkpoint{path: filepath.Join(dir, PredictionsFile), done: map[int]*Prediction{}}
	if _, err := os.Stat(c.path); err == nil {
		if !resume {
			return nil, fmt.Errorf("%s exists: pass --resume to continue that run, or choose another --out", c.path)
		}
		preds, err := ReadPredictions(c.path, true)
		if err != nil {
			return nil, err
		}
		for _, p := range preds {
			if p.Index == nil || *p.Index < 0 || *p.Index >= len(items) {
				return nil, fmt.Errorf("%s: a line without a valid index: not a checkpoint of this run", c.path)
			}
			it := items[*p.Index]
			if p.Prompt != it.Prompt() || p.LabelAnswer != it.Label {
				return nil, fmt.Errorf("%s: item %d has another prompt or label than the test set's: the file is from another data set, split or limit", c.path, *p.Index)
			}
			c.done[*p.Index] = p
		}
		if err := c.rewrite(); err != nil { // drops a torn tail
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(c.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	c.f = f
	return c, nil
}

// add appends one finished item: one write per line, so that a kill leaves
// at most one torn line at the end.
func (c *checkpoint) add(p *Prediction) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done[*p.Index] = p
	_, err = c.f.Write(append(b, '\n'))
	return err
}

// sorted are the finished predictions in item order.
func (c *checkpoint) sorted() []*Prediction {
	out := make([]*Prediction, 0, len(c.done))
	for _, p := range c.done {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return *out[i].Index < *out[j].Index })
	return out
}

// rewrite writes the file again in item order (at the end of a run, so
// that it reads as LLaMA-Factory's does).
func (c *checkpoint) rewrite() error {
	var buf bytes.Buffer
	for _, p := range c.sorted() {
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return writeFileAtomic(c.path, buf.Bytes())
}

func (c *checkpoint) close() error {
	if c.f == nil {
		return nil
	}
	return c.f.Close()
}

// writeJSON writes v indented, as LLaMA-Factory's save_metrics does.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}
