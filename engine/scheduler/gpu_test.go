package scheduler

import (
	"os"
	"testing"

	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

func gpusForTest() []llamacpp.Device {
	llamacpp.Init("")
	return llamacpp.GPUs()
}

func TestMain(m *testing.M) {
	// llama.cpp's model-loading chatter would bury the test output.
	llamacpp.SetLogger(func(level int, text string) {
		if level == 4 {
			os.Stderr.WriteString(text)
		}
	})
	// Every engine in this process then computes on the CPU variant that
	// the binary would use (llamacpp.Init runs once per process).
	llamacpp.Init(testutil.LibDir())
	os.Exit(m.Run())
}
