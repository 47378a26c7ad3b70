package batch

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/pagination"
)

func TestCreateBatchChecksItsParameters(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	in := upload(t, s, "", chatLines(1))
	good := CreateBatchParams{InputFileID: in.ID, Endpoint: EndpointCompletions, CompletionWindow: "24h",
		Metadata: map[string]string{"job": "nightly"}}
	many := map[string]string{}
	for i := 0; i < 17; i++ {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	cases := []struct {
		name  string
		mut   func(*CreateBatchParams)
		kind  Kind
		param string
	}{
		{"endpoint", func(p *CreateBatchParams) { p.Endpoint = "/v1/embeddings" }, KindInvalid, "endpoint"},
		{"window", func(p *CreateBatchParams) { p.CompletionWindow = "48h" }, KindInvalid, "completion_window"},
		{"no window", func(p *CreateBatchParams) { p.CompletionWindow = "" }, KindInvalid, "completion_window"},
		{"17 metadata keys", func(p *CreateBatchParams) { p.Metadata = many }, KindInvalid, "metadata"},
		{"long key", func(p *CreateBatchParams) { p.Metadata = map[string]string{strings.Repeat("k", 65): "v"} }, KindInvalid, "metadata"},
		{"long value", func(p *CreateBatchParams) { p.Metadata = map[string]string{"k": strings.Repeat("v", 513)} }, KindInvalid, "metadata"},
		{"no input", func(p *CreateBatchParams) { p.InputFileID = "" }, KindInvalid, "input_file_id"},
		{"unknown input", func(p *CreateBatchParams) { p.InputFileID = "file-NOSUCH" }, KindNotFound, "input_file_id"},
	}
	for _, c := range cases {
		p := good
		c.mut(&p)
		_, err := s.CreateBatch(ctx, "", p)
		be, ok := err.(*Error)
		if !ok || be.Kind != c.kind || be.Param != c.param {
			t.Errorf("%s: %#v, want kind %d param %s", c.name, err, c.kind, c.param)
		}
	}
	// The limits themselves are allowed.
	sixteen := map[string]string{}
	for i := 0; i < 16; i++ {
		sixteen[fmt.Sprintf("%s%02d", strings.Repeat("k", 62), i)] = strings.Repeat("v", 512)
	}
	p := good
	p.Metadata = sixteen
	b, err := s.CreateBatch(ctx, "", p)
	if err != nil {
		t.Fatalf("16 keys of 64 characters, values of 512: %v", err)
	}
	if b.Status != StatusValidating || b.Endpoint != EndpointCompletions || b.InputFileID != in.ID || len(b.Metadata) != 16 ||
		b.CompletionWindow != "24h" || *b.ExpiresAt != b.CreatedAt+24*3600 || b.Errors != nil || b.OutputFileID != nil {
		t.Fatalf("created batch: %+v", b)
	}
	checkBatchShape(t, b)
	if !strings.HasPrefix(b.ID, "batch_") || b.Object != "batch" {
		t.Fatalf("id %q object %q", b.ID, b.Object)
	}
}

func TestBatchInputMustBeABatchFile(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	if err := s.Start(newFake(), nil); err != nil {
		t.Fatal(err)
	}
	done := waitStatus(t, s, "", createBatch(t, s, "", chatLines(1)).ID, StatusCompleted)
	_, err := s.CreateBatch(ctx, "", CreateBatchParams{InputFileID: *done.OutputFileID, Endpoint: EndpointChatCompletions, CompletionWindow: "24h"})
	if be, ok := err.(*Error); !ok || be.Kind != KindInvalid || be.Param != "input_file_id" {
		t.Fatalf("an output file as input: %#v", err)
	}
}

func TestBatchListPagination(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	var ids []string
	for i := 0; i < 25; i++ {
		ids = append(ids, createBatch(t, s, "", chatLines(1)).ID)
	}
	l, err := s.ListBatches(ctx, "", ListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Data) != 20 || !l.HasMore || l.Data[0].ID != ids[24] || *l.LastID != ids[5] {
		t.Fatalf("default page: %d batches, has_more %v, first %s", len(l.Data), l.HasMore, l.Data[0].ID)
	}
	var page pagination.CursorPage[openai.Batch]
	// first_id, last_id and object are OpenAI's, unknown to the SDK's page.
	sdkShape(t, "batch list", l, &page, append([]string{"+object", "+first_id", "+last_id"}, batchAbsent...)...)
	if len(page.Data) != 20 || !page.HasMore {
		t.Fatalf("the SDK read %d batches, has_more %v", len(page.Data), page.HasMore)
	}
	l, err = s.ListBatches(ctx, "", ListParams{After: *l.LastID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Data) != 5 || l.HasMore || l.Data[4].ID != ids[0] {
		t.Fatalf("second page: %d batches, has_more %v", len(l.Data), l.HasMore)
	}
	if _, err := s.ListBatches(ctx, "", ListParams{Limit: 101}); kindOf(err) != KindInvalid {
		t.Fatalf("limit 101: %v", err)
	}
}

func TestOwnersAreIsolated(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	alice, bob := OwnerForKey("key-alice"), OwnerForKey("key-bob")
	if alice == bob || alice == "" || OwnerForKey("") != "" || strings.Contains(alice, "key-alice") {
		t.Fatalf("owners %q %q", alice, bob)
	}
	f := upload(t, s, alice, chatLines(2))
	b, err := s.CreateBatch(ctx, alice, CreateBatchParams{InputFileID: f.ID, Endpoint: EndpointChatCompletions, CompletionWindow: "24h"})
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{bob, ""} {
		if _, err := s.GetFile(ctx, other, f.ID); kindOf(err) != KindNotFound {
			t.Errorf("GetFile by %q: %v", other, err)
		}
		if _, _, err := s.FileContent(ctx, other, f.ID); kindOf(err) != KindNotFound {
			t.Errorf("FileContent by %q: %v", other, err)
		}
		if _, err := s.DeleteFile(ctx, other, f.ID); kindOf(err) != KindNotFound {
			t.Errorf("DeleteFile by %q: %v", other, err)
		}
		if l, err := s.ListFiles(ctx, other, ListParams{}); err != nil || len(l.Data) != 0 {
			t.Errorf("ListFiles by %q: %v, %v", other, l, err)
		}
		if _, err := s.ListFiles(ctx, other, ListParams{After: f.ID}); kindOf(err) != KindInvalid {
			t.Errorf("ListFiles by %q after another's file: %v", other, err)
		}
		if _, err := s.CreateBatch(ctx, other, CreateBatchParams{InputFileID: f.ID, Endpoint: EndpointChatCompletions, CompletionWindow: "24h"}); kindOf(err) != KindNotFound {
			t.Errorf("CreateBatch by %q on another's file: %v", other, err)
		}
		if _, err := s.GetBatch(ctx, other, b.ID); kindOf(err) != KindNotFound {
			t.Errorf("GetBatch by %q: %v", other, err)
		}
		if _, err := s.CancelBatch(ctx, other, b.ID); kindOf(err) != KindNotFound {
			t.Errorf("CancelBatch by %q: %v", other, err)
		}
		if l, err := s.ListBatches(ctx, other, ListParams{}); err != nil || len(l.Data) != 0 {
			t.Errorf("ListBatches by %q: %v, %v", other, l, err)
		}
	}
	// Nothing above touched alice's objects.
	if got, err := s.GetBatch(ctx, alice, b.ID); err != nil || got.Status != StatusValidating {
		t.Fatalf("alice's batch: %+v, %v", got, err)
	}
	if _, err := s.GetFile(ctx, alice, f.ID); err != nil {
		t.Fatalf("alice's file: %v", err)
	}
	// Output files belong to the batch's owner.
	if err := s.Start(newFake(), nil); err != nil {
		t.Fatal(err)
	}
	done := waitStatus(t, s, alice, b.ID, StatusCompleted)
	if _, err := s.GetFile(ctx, alice, *done.OutputFileID); err != nil {
		t.Fatalf("alice's output file: %v", err)
	}
	if _, _, err := s.FileContent(ctx, bob, *done.OutputFileID); kindOf(err) != KindNotFound {
		t.Fatalf("bob reading alice's output: %v", err)
	}
}
