package batch

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// crashDirEnv names the data folder of the child process in
// TestResumeAfterKill; the child is this test binary itself.
const crashDirEnv = "BATCH_TEST_CRASH_CHILD_DIR"

const crashLines = 40

// TestCrashChild is not a test of its own: run by TestResumeAfterKill as a
// subprocess, it runs the batch in the folder it is given, printing each
// line it has executed, until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child of TestResumeAfterKill")
	}
	cfg := testConfig(dir)
	cfg.MaxConcurrency = 3
	s, err := Open(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	fake := newFake()
	fake.delay = 15 * time.Millisecond
	fake.before = func(tag string) error {
		fmt.Printf("started %s\n", tag)
		return nil
	}
	if err := s.Start(fake, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Minute) // the parent kills us long before
	t.Fatal("the parent never killed the child")
}

// TestResumeAfterKill kills (SIGKILL) a process mid-batch, reopens its data
// folder and finishes the batch: every custom_id is in the output exactly
// once, and no line that had a result when the process died runs again.
func TestResumeAfterKill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(testConfig(dir), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	b := createBatch(t, s, "", chatLines(crashLines))
	s.Close()

	child := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	child.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once a dozen lines have started: some have results, some run.
	sc := bufio.NewScanner(out)
	started := 0
	for started < 12 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "started ") {
			started++
		}
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if started < 12 {
		t.Fatalf("the child started only %d lines", started)
	}

	s = openStore(t, dir)
	before, err := s.GetBatch(ctx, "", b.ID)
	if err != nil {
		t.Fatal(err)
	}
	had := before.RequestCounts.Completed
	if before.Status != StatusInProgress || had == 0 || had >= crashLines {
		t.Fatalf("when killed: %s with %d of %d lines done; want in progress, part done", before.Status, had, crashLines)
	}
	fake := newFake()
	if err := s.Start(fake, nil); err != nil {
		t.Fatal(err)
	}
	done := waitStatus(t, s, "", b.ID, StatusCompleted)
	if done.RequestCounts != (RequestCounts{Total: crashLines, Completed: crashLines}) {
		t.Fatalf("counts %+v", done.RequestCounts)
	}
	got := customIDs(outputLines(t, s, "", done.OutputFileID))
	want := customIDs(nil)
	for i := 1; i <= crashLines; i++ {
		want = append(want, fmt.Sprintf("c-%d", i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("output custom_ids %v, want each of c-1..c-%d once, in order", got, crashLines)
	}
	if n := fake.totalRuns(); n != crashLines-had {
		t.Fatalf("after the restart %d lines ran; %d had results, so want %d", n, had, crashLines-had)
	}
}
