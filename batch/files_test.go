package batch

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

func TestFileLifecycle(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	content := strings.Join(chatLines(3), "\n") + "\n"
	f, err := s.CreateFile(ctx, "", PurposeBatch, "prompts.jsonl", strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.ID, "file-") || f.Object != "file" || f.Bytes != int64(len(content)) ||
		f.Filename != "prompts.jsonl" || f.Purpose != "batch" || f.Status != "processed" || f.CreatedAt == 0 {
		t.Fatalf("created file: %+v", f)
	}
	checkFileShape(t, f)
	got, err := s.GetFile(ctx, "", f.ID)
	if err != nil || *got != *f {
		t.Fatalf("GetFile: %+v, %v; want %+v", got, err, f)
	}
	_, r, err := s.FileContent(ctx, "", f.ID)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r)
	r.Close()
	if string(data) != content {
		t.Fatalf("content %q, want %q", data, content)
	}
	del, err := s.DeleteFile(ctx, "", f.ID)
	if err != nil || *del != (FileDeleted{ID: f.ID, Object: "file", Deleted: true}) {
		t.Fatalf("DeleteFile: %+v, %v", del, err)
	}
	var sdkDel openai.FileDeleted
	sdkShape(t, "deleted file", del, &sdkDel)
	if _, err := s.GetFile(ctx, "", f.ID); kindOf(err) != KindNotFound {
		t.Fatalf("GetFile after delete: %v", err)
	}
	if _, err := s.DeleteFile(ctx, "", f.ID); kindOf(err) != KindNotFound {
		t.Fatalf("a second delete: %v", err)
	}
	if _, err := os.Stat(s.filePath(f.ID)); !os.IsNotExist(err) {
		t.Fatalf("the deleted file is still on disk: %v", err)
	}
}

func TestFileListPagination(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	var ids []string // oldest first
	for i := 0; i < 5; i++ {
		ids = append(ids, upload(t, s, "", chatLines(1)).ID)
	}
	page := func(p ListParams) ([]string, bool) {
		t.Helper()
		l, err := s.ListFiles(ctx, "", p)
		if err != nil {
			t.Fatal(err)
		}
		if l.Object != "list" {
			t.Fatalf("list object %q", l.Object)
		}
		var got []string
		for _, f := range l.Data {
			got = append(got, f.ID)
		}
		if len(got) > 0 && (*l.FirstID != got[0] || *l.LastID != got[len(got)-1]) {
			t.Fatalf("first_id/last_id %s/%s for %v", *l.FirstID, *l.LastID, got)
		}
		return got, l.HasMore
	}
	eq := func(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }
	if got, more := page(ListParams{}); !eq(got, []string{ids[4], ids[3], ids[2], ids[1], ids[0]}) || more {
		t.Fatalf("default (newest first): %v more=%v", got, more)
	}
	if got, more := page(ListParams{Limit: 2}); !eq(got, []string{ids[4], ids[3]}) || !more {
		t.Fatalf("limit 2: %v more=%v", got, more)
	}
	if got, more := page(ListParams{Limit: 2, After: ids[3]}); !eq(got, []string{ids[2], ids[1]}) || !more {
		t.Fatalf("after %s: %v more=%v", ids[3], got, more)
	}
	if got, more := page(ListParams{Order: "asc", After: ids[2]}); !eq(got, []string{ids[3], ids[4]}) || more {
		t.Fatalf("asc after %s: %v more=%v", ids[2], got, more)
	}
	if got, _ := page(ListParams{Purpose: PurposeBatchOutput}); len(got) != 0 {
		t.Fatalf("purpose batch_output: %v", got)
	}
	if got, _ := page(ListParams{Purpose: PurposeBatch, Limit: 1}); !eq(got, ids[4:]) {
		t.Fatalf("purpose batch: %v", got)
	}
	for _, p := range []ListParams{{Limit: -1}, {Limit: 10_001}, {Order: "sideways"}, {After: "file-NOSUCH"}} {
		if _, err := s.ListFiles(ctx, "", p); kindOf(err) != KindInvalid {
			t.Errorf("ListFiles(%+v): %v, want an invalid request", p, err)
		}
	}
	// An empty list is a list with no data, never null.
	l, err := s.ListFiles(ctx, "someone-else", ListParams{})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(l)
	if string(js) != `{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}` {
		t.Fatalf("empty list: %s", js)
	}
}

func TestFileLimits(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	line := reqLine("x", EndpointChatCompletions, "x") + "\n"
	cfg.MaxFileBytes = int64(3 * len(line))
	cfg.MaxFileLines = 2
	s := openStoreConfig(t, cfg)

	// Two requests and blank lines (not requests) fit.
	if _, err := s.CreateFile(ctx, "", PurposeBatch, "ok.jsonl", strings.NewReader(line+"\n"+strings.TrimSuffix(line, "\n"))); err != nil {
		t.Fatalf("2 lines and a blank one: %v", err)
	}
	_, err := s.CreateFile(ctx, "", PurposeBatch, "lines.jsonl", strings.NewReader(line+line+"{}"))
	if be, ok := err.(*Error); !ok || be.Kind != KindInvalid || be.Code != CodeTooManyLines {
		t.Fatalf("3 lines over a limit of 2: %#v", err)
	}
	_, err = s.CreateFile(ctx, "", PurposeBatch, "big.jsonl", strings.NewReader(line+line+line+"\n"))
	if be, ok := err.(*Error); !ok || be.Kind != KindTooLarge || be.Code != CodeFileTooLarge {
		t.Fatalf("one byte over the size limit: %#v", err)
	}
	// Nothing of the refused uploads is kept.
	entries, _ := os.ReadDir(filepath.Join(cfg.DataDir, "files"))
	l, _ := s.ListFiles(ctx, "", ListParams{})
	if len(entries) != 1 || len(l.Data) != 1 {
		t.Fatalf("after refused uploads: %d files on disk, %d listed; want 1", len(entries), len(l.Data))
	}
	if _, err := s.CreateFile(ctx, "", "fine-tune", "x.jsonl", strings.NewReader(line)); kindOf(err) != KindInvalid {
		t.Fatalf("purpose fine-tune: %v", err)
	}
	if _, err := s.CreateFile(ctx, "", PurposeBatch, "", strings.NewReader(line)); kindOf(err) != KindInvalid {
		t.Fatalf("no file name: %v", err)
	}
}

func TestDefaultLimitsAreOpenAIs(t *testing.T) {
	c := DefaultConfig()
	if c.MaxFileBytes != 200<<20 || c.MaxFileLines != 50_000 {
		t.Fatalf("defaults %d bytes, %d lines", c.MaxFileBytes, c.MaxFileLines)
	}
}

func TestFileIDsCannotNamePaths(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	// Files that a path-walking id would reach.
	os.WriteFile(filepath.Join(dir, "secret"), []byte("secret"), 0o600)
	for _, id := range []string{"../batch.db", "file-../../secret", "file-..%2Fsecret", "file-a/b", "file-", "file-" + strings.Repeat("A", 65), "lock"} {
		if _, err := s.GetFile(ctx, "", id); kindOf(err) != KindNotFound {
			t.Errorf("GetFile(%q): %v", id, err)
		}
		if _, _, err := s.FileContent(ctx, "", id); kindOf(err) != KindNotFound {
			t.Errorf("FileContent(%q): %v", id, err)
		}
		if _, err := s.DeleteFile(ctx, "", id); kindOf(err) != KindNotFound {
			t.Errorf("DeleteFile(%q): %v", id, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "secret")); err != nil {
		t.Fatal("a path-like id removed a file outside files/")
	}
}
