package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/qwen3-lora/qwen3-server/tools/eval/metrics"
)

// lfFile is a generated_predictions.jsonl as LLaMA-Factory writes it: the
// rendered prompt, and predict and label with their think blocks.
const lfFile = `{"prompt": "system\nYou are a doctor.\nuser\n头痛怎么办？\nassistant\n", "predict": "<think>\n用户头痛。\n</think>\n\n多休息，多喝水。", "label": "<think>\n用户问头痛。\n</think>\n\n多休息，多喝水，必要时就医。"}
{"prompt": "user\nHi\nassistant\n", "predict": "Hello! How can I help?", "label": "Hello! How can I help you today?"}
{"prompt": "user\nCapital of France?\nassistant\n", "predict": "<think>\nParis is the capital. The answer is Paris.\n</think>\n\nParis.", "label": "The capital of France is Paris."}
`

// eval score on LLaMA-Factory's own file: full scores the texts as they
// are (LLaMA-Factory's numbers), answer strips the think blocks first.
func TestScoreLLaMAFactoryFile(t *testing.T) {
	p := write(t, t.TempDir(), PredictionsFile, lfFile)
	for _, mode := range []ScoreMode{ScoreFull, ScoreAnswer} {
		preds, err := ReadPredictions(p, false)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Score("lf", preds, mode)
		if err != nil {
			t.Fatal(err)
		}
		var want []metrics.Scores
		for _, line := range strings.Split(strings.TrimSpace(lfFile), "\n") {
			var raw struct{ Predict, Label string }
			if err := json.Unmarshal([]byte(line), &raw); err != nil {
				t.Fatal(err)
			}
			pred, label := raw.Predict, raw.Label
			if mode == ScoreAnswer {
				_, pred = SplitThink(pred)
				_, label = SplitThink(label)
			}
			s, _ := metrics.Score(pred, label)
			want = append(want, s)
		}
		if r.Scores != metrics.Average(want) {
			t.Errorf("%s: %+v, want %+v", mode, r.Scores, metrics.Average(want))
		}
		// Reasoning stats: two items reasoned; the third wrote its answer
		// (Paris.) inside the reasoning already.
		if r.ThinkingItems != 2 || r.NonThinkingItems != 1 || r.LeakedItems != 1 {
			t.Errorf("%s: %d thinking, %d not, %d leaked; want 2, 1, 1", mode, r.ThinkingItems, r.NonThinkingItems, r.LeakedItems)
		}
	}
	bad := write(t, t.TempDir(), PredictionsFile, lfFile+"{\"predict\": \n")
	if _, err := ReadPredictions(bad, false); err == nil || !strings.Contains(err.Error(), ":4:") {
		t.Errorf("bad line: %v, want an error at line 4", err)
	}
}

func TestLeaked(t *testing.T) {
	for _, c := range []struct {
		r, a string
		want bool
	}{{"", "A", false}, {"thinking", "", true}, {"so the answer is  Paris.", "Paris.", true}, {"thinking", "Paris.", false}} {
		if got := Leaked(c.r, c.a); got != c.want {
			t.Errorf("Leaked(%q, %q) = %v", c.r, c.a, got)
		}
	}
}

// The report is one HTML file without external resources: the score
// table, three inline SVG charts, the largest gains and losses.
func TestReportRenders(t *testing.T) {
	p := write(t, t.TempDir(), PredictionsFile, lfFile)
	mk := func(name string, edit func(*Prediction)) *ModelResult {
		preds, err := ReadPredictions(p, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range preds {
			edit(pr)
		}
		r, err := Score(name, preds, ScoreAnswer)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	base := mk("base", func(p *Prediction) { p.Answer = "I do not know. <b>" })
	tuned := mk("medical <1>", func(*Prediction) {})
	worse := mk("worse", func(p *Prediction) { p.Answer = "" })
	var buf bytes.Buffer
	if err := Report(&buf, ReportInfo{Title: "Eval <test>", Dataset: "med.json", Score: ScoreAnswer, When: time.Unix(0, 0)}, []*ModelResult{base, tuned, worse}); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var svgs, rects, swingGain, swingLoss int
	var rows [][]string
	var external []string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "svg":
				svgs++
			case "rect":
				rects++
			case "script", "link", "img", "iframe":
				external = append(external, n.Data)
			case "tr":
				var cells []string
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					if c.Type == html.ElementNode && c.Data == "td" {
						cells = append(cells, text(c))
					}
				}
				if cells != nil {
					rows = append(rows, cells)
				}
			case "div":
				for _, a := range n.Attr {
					if a.Key == "class" && a.Val == "swing gain" {
						swingGain++
					}
					if a.Key == "class" && a.Val == "swing loss" {
						swingLoss++
					}
				}
			}
			for _, a := range n.Attr {
				if (a.Key == "src" || a.Key == "href") && a.Val != "" {
					external = append(external, a.Key+"="+a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if svgs != 3 || rects < 3*4+3*10 {
		t.Errorf("%d svg charts with %d bars, want 3 with every model's bars", svgs, rects)
	}
	if len(external) > 0 {
		t.Errorf("the report loads %v", external)
	}
	if len(rows) != 3 || rows[1][0] != "medical <1>" || rows[1][5] != fmtScore(tuned.Scores.RougeL) {
		t.Errorf("score table %v", rows)
	}
	// The tuned model beats base's "I do not know" wherever it scores.
	if swingGain == 0 {
		t.Errorf("%d gains, %d losses shown; want the tuned model's gains", swingGain, swingLoss)
	}
	if !strings.Contains(buf.String(), "Eval &lt;test&gt;") || !strings.Contains(buf.String(), "I do not know. &lt;b&gt;") {
		t.Error("text is not escaped")
	}
	var tbl bytes.Buffer
	if err := Table(&tbl, []*ModelResult{base, tuned}); err != nil || !strings.Contains(tbl.String(), fmtScore(tuned.Scores.BLEU4)) {
		t.Errorf("table:\n%s %v", tbl.String(), err)
	}
}

func fmtScore(v float64) string { return fmt.Sprintf("%.4f", v) }

func text(n *html.Node) string {
	if n.Type == html.TextNode {
		return n.Data
	}
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		b.WriteString(text(c))
	}
	return b.String()
}
