package metrics

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"testing"

	"github.com/yanyiwu/gojieba"
)

// gojiebaDictPath is jieba.dict.utf8 in the gojieba module's source folder,
// the file the embedded copy was made from; only tests read it.
func gojiebaDictPath() string { return gojieba.DICT_PATH }

// TestEmbeddedDictIsGojiebas: the compiled-in dictionary is the pinned
// gojieba module's file byte for byte, so that TestDictionaryIsJiebas (which
// reads the module's file) proves what Default segments with.
func TestEmbeddedDictIsGojiebas(t *testing.T) {
	want, err := os.ReadFile(gojiebaDictPath())
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(embeddedDict))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("embedded dictionary (%d bytes) differs from %s (%d bytes): regenerate it with gzip -9 -n", len(got), gojiebaDictPath(), len(want))
	}
}
