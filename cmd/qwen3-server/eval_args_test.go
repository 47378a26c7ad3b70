package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/tools/eval"
)

func TestParseModels(t *testing.T) {
	got, err := parseModels("base, medical=/a/b ,chat=c.gguf", false)
	if err != nil || !reflect.DeepEqual(got, []modelSpec{{"base", ""}, {"medical", "/a/b"}, {"chat", "c.gguf"}}) {
		t.Errorf("local: %v %v", got, err)
	}
	if got, err := parseModels("base,medical", true); err != nil || len(got) != 2 {
		t.Errorf("remote: %v %v", got, err)
	}
	for _, c := range []struct {
		s      string
		remote bool
	}{{"medical", false}, {"base,base", false}, {"base=x", false}, {"medical=/x", true}, {",", false}} {
		if _, err := parseModels(c.s, c.remote); err == nil {
			t.Errorf("--models %q (remote %v) accepted", c.s, c.remote)
		}
	}
}

// --split writes the two parts and evaluates the held-out one; --limit
// caps it; a dataset_info.json folder needs --dataset.
func TestLoadEvalItems(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := 0; i < 30; i++ {
		lines = append(lines, fmt.Sprintf(`{"instruction": "q%d", "output": "a%d"}`, i, i))
	}
	data := filepath.Join(dir, "all.jsonl")
	os.WriteFile(data, []byte(strings.Join(lines, "\n")), 0o644)
	split := filepath.Join(dir, "split")
	items, _, err := loadEvalItems(data, "", eval.FormatAuto, false, 10, 3, split, 4)
	if err != nil {
		t.Fatal(err)
	}
	train, err := eval.Load(eval.Source{Path: filepath.Join(split, "train.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	test, err := eval.Load(eval.Source{Path: filepath.Join(split, "test.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	if len(train.Items) != 20 || len(test.Items) != 10 || len(items) != 4 {
		t.Fatalf("%d train, %d test, %d evaluated; want 20, 10, 4", len(train.Items), len(test.Items), len(items))
	}
	for i, it := range items {
		if it.Prompt() != test.Items[i].Prompt() {
			t.Errorf("evaluated item %d is %q, test.jsonl's is %q", i, it.Prompt(), test.Items[i].Prompt())
		}
	}
	os.WriteFile(filepath.Join(dir, "dataset_info.json"), []byte(`{"all": {"file_name": "all.jsonl"}}`), 0o644)
	if _, _, err := loadEvalItems(dir, "", eval.FormatAuto, false, 0, 0, "", 0); err == nil {
		t.Error("a folder without --dataset accepted")
	}
	if items, _, err := loadEvalItems(dir, "all", eval.FormatAuto, false, 0, 0, "", 0); err != nil || len(items) != 30 {
		t.Errorf("dataset_info.json entry: %d items, %v", len(items), err)
	}
}
