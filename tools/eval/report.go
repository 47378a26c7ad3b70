package eval

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qwen3-lora/qwen3-server/tools/eval/metrics"
)

// Table writes the terminal table: one row per model.
func Table(w io.Writer, results []*ModelResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tsamples\tBLEU-4\tROUGE-1\tROUGE-2\tROUGE-L\tthinking\treasoning chars\tleaked\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%d\t%.0f\t%d\t\n", r.Name, r.Samples,
			r.Scores.BLEU4, r.Scores.Rouge1, r.Scores.Rouge2, r.Scores.RougeL, r.ThinkingItems, r.ReasoningChars, r.LeakedItems)
	}
	return tw.Flush()
}

// metricNames are the four scores, in LLaMA-Factory's order.
var metricNames = []string{"BLEU-4", "ROUGE-1", "ROUGE-2", "ROUGE-L"}

func metricValues(s metrics.Scores) []float64 {
	return []float64{s.BLEU4, s.Rouge1, s.Rouge2, s.RougeL}
}

// palette colours the models (colour-blind safe, Okabe–Ito).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"}

func color(i int) string { return palette[i%len(palette)] }

// ReportInfo is what the report says about the run.
type ReportInfo struct {
	Title   string
	Dataset string
	Score   ScoreMode
	When    time.Time
}

// Report writes the self-contained HTML report: every chart is inline SVG
// drawn here, the style is inline, nothing is fetched.
func Report(w io.Writer, info ReportInfo, results []*ModelResult) error {
	if len(results) == 0 {
		return fmt.Errorf("report: no results")
	}
	data := struct {
		Info                  ReportInfo
		Results               []*ModelResult
		Legend                []legendEntry
		Bars, Dist, Reasoning template.HTML
		Swings                []swing
		GeneratedAt           string
		ComparedTo, Metric    string
	}{Info: info, Results: results, GeneratedAt: info.When.UTC().Format(time.RFC3339), ComparedTo: results[0].Name, Metric: "ROUGE-L"}
	for i, r := range results {
		data.Legend = append(data.Legend, legendEntry{r.Name, color(i)})
	}
	data.Bars = barsChart(results)
	data.Dist = distributionChart(results)
	data.Reasoning = reasoningChart(results)
	data.Swings = swings(results, 5)
	return reportTmpl.Execute(w, data)
}

type legendEntry struct{ Name, Color string }

// svgBuilder accumulates SVG elements; text is escaped.
type svgBuilder struct{ strings.Builder }

func (b *svgBuilder) f(format string, a ...any) { fmt.Fprintf(&b.Builder, format, a...) }

func esc(s string) string { return template.HTMLEscapeString(s) }

// groupedBars draws groups of bars (one bar per model in each group) on a
// 0..100 axis.
func groupedBars(title string, groups []string, values [][]float64, yMax float64, unit string) template.HTML {
	const W, H, left, bottom, top = 720, 300, 50, 40, 30
	var b svgBuilder
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="%s" class="chart">`, W, H, esc(title))
	plotH := float64(H - bottom - top)
	for i := 0; i <= 4; i++ {
		y := float64(H-bottom) - plotH*float64(i)/4
		b.f(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, left, W-10, y, y)
		b.f(`<text x="%d" y="%.1f" text-anchor="end" font-size="11">%s</text>`, left-6, y+4, esc(fmtNum(yMax*float64(i)/4)))
	}
	groupW := float64(W-left-10) / float64(len(groups))
	for g, name := range groups {
		n := len(values[g])
		barW := groupW * 0.8 / float64(max(n, 1))
		x0 := float64(left) + groupW*float64(g) + groupW*0.1
		for m, v := range values[g] {
			h := 0.0
			if yMax > 0 {
				h = plotH * math.Min(v, yMax) / yMax
			}
			x := x0 + barW*float64(m)
			b.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`,
				x, float64(H-bottom)-h, barW*0.92, h, color(m), esc(fmt.Sprintf("%s: %s%s", name, fmtNum(v), unit)))
			if n <= 4 && v != 0 {
				b.f(`<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`, x+barW*0.46, float64(H-bottom)-h-3, esc(fmtNum(v)))
			}
		}
		b.f(`<text x="%.1f" y="%d" text-anchor="middle" font-size="12">%s</text>`, x0+groupW*0.4, H-bottom+18, esc(name))
	}
	b.f(`<text x="%d" y="18" font-size="13" font-weight="bold">%s</text></svg>`, left, esc(title))
	return template.HTML(b.String())
}

func fmtNum(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func barsChart(results []*ModelResult) template.HTML {
	values := make([][]float64, len(metricNames))
	for i := range metricNames {
		for _, r := range results {
			values[i] = append(values[i], metricValues(r.Scores)[i])
		}
	}
	return groupedBars("Average scores (×100)", metricNames, values, 100, "")
}

// distributionChart is the share of samples per ROUGE-L decile, per model.
func distributionChart(results []*ModelResult) template.HTML {
	groups := make([]string, 10)
	values := make([][]float64, 10)
	for d := range groups {
		groups[d] = fmt.Sprintf("%d–%d", d*10, d*10+10)
		values[d] = make([]float64, len(results))
	}
	yMax := 0.0
	for m, r := range results {
		for _, s := range r.PerSample {
			d := min(int(s.RougeL/10), 9)
			values[d][m] += 100 / float64(max(len(r.PerSample), 1))
		}
	}
	for _, v := range values {
		for _, x := range v {
			yMax = math.Max(yMax, x)
		}
	}
	return groupedBars("Per-sample ROUGE-L: share of samples (%) per range", groups, values, niceCeil(yMax), "%")
}

// reasoningChart is the mean reasoning length of the items run with
// thinking on and off, per model.
func reasoningChart(results []*ModelResult) template.HTML {
	values := [][]float64{{}, {}}
	yMax := 0.0
	for _, r := range results {
		values[0] = append(values[0], r.ReasoningChars)
		values[1] = append(values[1], r.ReasoningCharsNoThk)
		yMax = math.Max(yMax, math.Max(r.ReasoningChars, r.ReasoningCharsNoThk))
	}
	return groupedBars("Mean reasoning length (characters)", []string{"thinking items", "non-thinking items"}, values, niceCeil(yMax), " chars")
}

// niceCeil rounds an axis maximum up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// swing is a sample whose ROUGE-L moved most between the first model and
// another.
type swing struct {
	Model, Kind   string
	Delta         float64
	Prompt, Label string
	Answers       []answer
}

type answer struct {
	Model, Text string
	RougeL      float64
	Color       string
}

// swings are the n largest gains and n largest losses of each model
// against the first, by ROUGE-L, on the samples both have.
func swings(results []*ModelResult, n int) []swing {
	if len(results) < 2 {
		return nil
	}
	base := results[0]
	var out []swing
	for _, r := range results[1:] {
		count := min(len(r.PerSample), len(base.PerSample))
		idx := make([]int, count)
		for i := range idx {
			idx[i] = i
		}
		delta := func(i int) float64 { return r.PerSample[i].RougeL - base.PerSample[i].RougeL }
		sort.SliceStable(idx, func(a, b int) bool { return delta(idx[a]) > delta(idx[b]) })
		pick := func(i int, kind string) {
			s := swing{Model: r.Name, Kind: kind, Delta: delta(i), Prompt: base.Predictions[i].Prompt, Label: base.Predictions[i].Label}
			for m, rr := range results {
				if i < len(rr.Predictions) {
					s.Answers = append(s.Answers, answer{rr.Name, rr.Predictions[i].Predict, rr.PerSample[i].RougeL, color(m)})
				}
			}
			out = append(out, s)
		}
		for k := 0; k < n && k < count && delta(idx[k]) > 0; k++ {
			pick(idx[k], "gain")
		}
		for k := 0; k < n && k < count && delta(idx[count-1-k]) < 0; k++ {
			pick(idx[count-1-k], "loss")
		}
	}
	return out
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"f4":     func(v float64) string { return fmt.Sprintf("%.4f", v) },
	"f1":     func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"signed": func(v float64) string { return fmt.Sprintf("%+.2f", v) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Info.Title}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.3rem .7rem;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}.chart{width:100%;max-width:720px;height:auto;display:block;margin:1rem 0}
.legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em}
.swing{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}.gain{border-left:5px solid #009E73}.loss{border-left:5px solid #D55E00}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.5rem;border-radius:4px;margin:.3rem 0;max-height:16rem;overflow:auto}
.muted{color:#666;font-size:.9rem}
</style>
</head>
<body>
<h1>{{.Info.Title}}</h1>
<p class="muted">Data set: {{.Info.Dataset}} · scored text: {{.Info.Score}} · {{.GeneratedAt}} · scores are LLaMA-Factory's (BLEU-4 on characters, ROUGE on jieba words, ×100)</p>
<p class="legend">{{range .Legend}}<span><i style="background:{{.Color}}"></i>{{.Name}}</span>{{end}}</p>
<h2>Scores</h2>
<table id="scores">
<tr><th>model</th><th>samples</th><th>BLEU-4</th><th>ROUGE-1</th><th>ROUGE-2</th><th>ROUGE-L</th><th>thinking items</th><th>reasoning chars (thinking)</th><th>answer leaked into reasoning</th><th>empty answers</th></tr>
{{range .Results}}<tr><td>{{.Name}}</td><td>{{.Samples}}</td><td>{{f4 .Scores.BLEU4}}</td><td>{{f4 .Scores.Rouge1}}</td><td>{{f4 .Scores.Rouge2}}</td><td>{{f4 .Scores.RougeL}}</td><td>{{.ThinkingItems}}</td><td>{{f1 .ReasoningChars}}</td><td>{{.LeakedItems}}</td><td>{{.EmptyAnswers}}</td></tr>
{{end}}</table>
{{.Bars}}
<h2>Distribution of per-sample scores</h2>
{{.Dist}}
<h2>Reasoning</h2>
{{.Reasoning}}
{{if .Swings}}<h2>Largest gains and losses against {{.ComparedTo}} ({{.Metric}})</h2>
{{range .Swings}}<div class="swing {{.Kind}}"><p><b>{{.Model}}</b>: {{.Kind}} of {{signed .Delta}} ROUGE-L</p>
<p class="muted">prompt</p><pre>{{.Prompt}}</pre><p class="muted">label</p><pre>{{.Label}}</pre>
{{range .Answers}}<p class="muted"><i style="color:{{.Color}}">■</i> {{.Model}} (ROUGE-L {{f1 .RougeL}})</p><pre>{{.Text}}</pre>{{end}}</div>
{{end}}{{end}}
</body>
</html>
`))
