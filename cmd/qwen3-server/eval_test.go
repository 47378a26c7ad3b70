package main

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qwen3-lora/qwen3-server/internal/testutil"
	"github.com/qwen3-lora/qwen3-server/tools/eval"
	"github.com/qwen3-lora/qwen3-server/tools/eval/metrics"
	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

func builtBinary(t *testing.T) string {
	bin := filepath.Join(testutil.RepoRoot(t), "bin", "qwen3-server")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s missing: `make test` builds it first", bin)
	}
	return bin
}

// binCmd runs the binary as a user would, in a bare environment (no Go
// module cache, no GOPATH: the jieba dictionary must come with it).
func binCmd(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(builtBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	return cmd
}

func readResults(t *testing.T, path string) map[string]float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func checkAverages(t *testing.T, got map[string]float64, want metrics.Scores) {
	t.Helper()
	if got["predict_bleu-4"] != want.BLEU4 || got["predict_rouge-1"] != want.Rouge1 || got["predict_rouge-2"] != want.Rouge2 || got["predict_rouge-l"] != want.RougeL {
		t.Errorf("predict_results.json %v, want %+v", got, want)
	}
}

// The shipped binary does not link gojieba: its dictionary is compiled in,
// not looked up in the module cache of the machine that built it.
func TestBinaryCarriesTheDictionary(t *testing.T) {
	info, err := buildinfo.ReadFile(builtBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range info.Deps {
		if d.Path == "github.com/yanyiwu/gojieba" {
			t.Errorf("the binary links %s %s", d.Path, d.Version)
		}
	}
}

// eval on the chain model (which answers "Hello!"), interrupted by SIGINT
// as Ctrl-C does, then resumed: the finished items are kept, the rest run,
// and the scores are those of the known answers, segmented with the
// binary's own dictionary (Chinese labels).
func TestEvalBinaryInterruptResume(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	var want []metrics.Scores
	for i := 0; i < 120; i++ {
		label := fmt.Sprintf("你好！Hello! 第%d个回答。", i)
		lines = append(lines, fmt.Sprintf(`{"instruction": "问题 %d", "output": %q}`, i, label))
		s, err := metrics.Score("Hello!", label)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, s)
	}
	data := filepath.Join(dir, "test.jsonl")
	if err := os.WriteFile(data, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	// One llama.cpp thread: on a loaded machine (CI, a shared box) two
	// threads wait on each other at every barrier, several times slower.
	args := []string{"eval", "--model", testutil.Model(t, "tiny-chain.gguf"), "--ctx-size", "256", "--parallel", "1", "--threads", "1",
		"--data", data, "--models", "base", "--out", out}
	var stderr bytes.Buffer
	cmd := binCmd(t, args...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	preds := filepath.Join(out, "base", eval.PredictionsFile)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(preds); err == nil && bytes.Count(b, []byte("\n")) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no prediction after 60 s; log:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if err == nil || !strings.Contains(stderr.String(), "interrupted") || !strings.Contains(stderr.String(), "--resume") {
		t.Fatalf("interrupted run: exit %v; log:\n%s", err, stderr.String())
	}
	kept, err := eval.ReadPredictions(preds, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) == 0 || len(kept) >= 120 {
		t.Fatalf("%d predictions kept after the interrupt, want some but not all", len(kept))
	}
	cmd = binCmd(t, append(args, "--resume")...)
	var stdout bytes.Buffer
	stderr.Reset()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("resumed run: %v; log:\n%s", err, stderr.String())
	}
	all, err := eval.ReadPredictions(preds, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 120 {
		t.Fatalf("%d predictions after resuming, want 120", len(all))
	}
	for i, p := range all {
		if *p.Index != i || p.Predict != "Hello!" {
			t.Fatalf("line %d: %+v", i+1, p)
		}
	}
	checkAverages(t, readResults(t, filepath.Join(out, "base", eval.ResultsFile)), metrics.Average(want))
	if !strings.Contains(stdout.String(), "ROUGE-L") || !strings.Contains(stdout.String(), fmt.Sprintf("%.4f", metrics.Average(want).RougeL)) {
		t.Errorf("terminal table:\n%s", stdout.String())
	}
	if st, err := os.Stat(filepath.Join(out, "report.html")); err != nil || st.Size() == 0 {
		t.Errorf("report.html: %v", err)
	}
}

// eval score on a LLaMA-Factory generated_predictions.jsonl.
func TestEvalScoreBinary(t *testing.T) {
	dir := t.TempDir()
	type line struct {
		Prompt  string `json:"prompt"`
		Predict string `json:"predict"`
		Label   string `json:"label"`
	}
	src := []line{
		{"user\n头痛怎么办？\nassistant\n", "<think>\n用户头痛。\n</think>\n\n多休息，多喝水。", "<think>\n用户问头痛。\n</think>\n\n多休息，多喝水，必要时就医。"},
		{"user\nHi\nassistant\n", "Hello! How can I help?", "Hello! How can I help you today?"},
	}
	var b bytes.Buffer
	var full, answers []metrics.Scores
	for _, l := range src {
		j, _ := json.Marshal(l)
		b.Write(append(j, '\n'))
		s, _ := metrics.Score(l.Predict, l.Label)
		full = append(full, s)
		_, pa := eval.SplitThink(l.Predict)
		_, la := eval.SplitThink(l.Label)
		s, _ = metrics.Score(pa, la)
		answers = append(answers, s)
	}
	file := filepath.Join(dir, "lf", eval.PredictionsFile)
	os.MkdirAll(filepath.Dir(file), 0o755)
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for mode, want := range map[string][]metrics.Scores{"full": full, "answer": answers} {
		out := filepath.Join(dir, "out-"+mode)
		cmd := binCmd(t, "eval", "score", "--predictions", file, "--score", mode, "--out", out)
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, o)
		}
		checkAverages(t, readResults(t, filepath.Join(out, "lf", eval.ResultsFile)), metrics.Average(want))
	}
}

// eval with a PEFT folder from the command line: converted and loaded
// through the adapter registry as serve loads it, run beside the base.
func TestEvalBinaryAdapter(t *testing.T) {
	dir := t.TempDir()
	peft := filepath.Join(dir, "saves", "medical-sft")
	p := modelgen.RandomPEFT{Dims: modelgen.Dims{Layers: 2, Hidden: 64, QDim: 64, KVDim: 32, FFN: 192}, Rank: 8, Alpha: 16, DType: "BF16",
		Seed: 11, Scale: 0.5, Targets: []string{"q_proj", "v_proj", "down_proj"}}
	if err := p.Write(peft); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "test.json")
	os.WriteFile(data, []byte(`[{"instruction": "Fever?", "output": "Rest."}, {"instruction": "Cough?", "output": "Drink tea."}]`), 0o644)
	out := filepath.Join(dir, "out")
	cmd := binCmd(t, "eval", "--model", testutil.Model(t, "tiny-random.gguf"), "--ctx-size", "256", "--parallel", "2", "--threads", "1",
		"--data", data, "--models", "base,medical="+peft, "--thinking", "off", "--max-tokens", "4", "--out", out)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	answers := map[string][]string{}
	for _, m := range []string{"base", "medical"} {
		preds, err := eval.ReadPredictions(filepath.Join(out, m, eval.PredictionsFile), false)
		if err != nil || len(preds) != 2 {
			t.Fatalf("%s: %d predictions, %v", m, len(preds), err)
		}
		for _, p := range preds {
			answers[m] = append(answers[m], p.Predict)
		}
		if r := readResults(t, filepath.Join(out, m, eval.ResultsFile)); r["predict_samples_per_second"] <= 0 {
			t.Errorf("%s: predict_results.json %v", m, r)
		}
	}
	if reflect.DeepEqual(answers["base"], answers["medical"]) {
		t.Errorf("the adapter's answers are the base's: %q", answers["base"])
	}
}
