package main

// run-batch: vLLM's offline batch runner. The input and output lines are
// the Batch API's; the run is a batch in a throw-away batch store, so the
// validation, the execution (the server's own Executor, the chat and
// completions handlers in-process) and the output lines are exactly the
// server's.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/qwen3-lora/qwen3-server/batch"
	"github.com/qwen3-lora/qwen3-server/configs"
	"github.com/qwen3-lora/qwen3-server/engine/scheduler"
	"github.com/qwen3-lora/qwen3-server/server"
)

// offlineWindow stands in for "24h" offline: a local run has no deadline.
const offlineWindow = 100 * 365 * 24 * time.Hour

func runBatch(args []string) error {
	fs := pflag.NewFlagSet("run-batch", pflag.ContinueOnError)
	configs.RegisterFlags(fs)
	in := fs.StringP("input", "i", "", "batch input file (JSONL: custom_id, method, url, body per line); - for stdin")
	out := fs.StringP("output", "o", "", "output file (JSONL: id, custom_id, response, error per line); - for stdout")
	noProgress := fs.Bool("no-progress", false, "no progress bar on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return errors.New("run-batch needs -i INPUT.jsonl and -o OUTPUT.jsonl (- for stdin/stdout)")
	}
	cfg, err := configs.Load(fs, os.Environ())
	if err != nil {
		return err
	}
	if !fs.Changed("log-level") {
		cfg.Log.Level = "warn" // the progress bar is the output on stderr
	}
	log, err := validatedLogger(cfg)
	if err != nil {
		return err
	}
	defer log.Sync()

	input, err := readInput(*in)
	if err != nil {
		return err
	}
	endpoint, err := inputEndpoint(input)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "qwen3-run-batch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Nothing interactive runs here: batch lines may take every slot.
	cfg.Batch.MaxConcurrency = cfg.Engine.Parallel
	bc := cfg.Batch
	bc.DataDir = dir
	bc.MaxFileBytes, bc.MaxFileLines = math.MaxInt64, math.MaxInt32 // a local file has no upload limit
	store, err := batch.Open(bc, log, batch.WithCompletionWindow(offlineWindow))
	if err != nil {
		return err
	}
	defer store.Close()

	eng, err := scheduler.New(engineOptions(cfg), log.Named("engine"))
	if err != nil {
		return err
	}
	defer eng.Close()
	srv := server.New(cfg.Server, cfg.Sampling, log.Named("server"))
	reg, err := loadAdapters(ctx, eng, cfg, log)
	if err != nil {
		return err
	}
	if reg != nil {
		srv.SetAdapters(reg)
	}
	srv.SetEngine(eng)

	f, err := store.CreateFile(ctx, "", batch.PurposeBatch, "input.jsonl", bytes.NewReader(input))
	if err != nil {
		return err
	}
	b, err := store.CreateBatch(ctx, "", batch.CreateBatchParams{InputFileID: f.ID, Endpoint: endpoint, CompletionWindow: batch.CompletionWindow})
	if err != nil {
		return err
	}
	if err := store.Start(srv.Executor(), srv.ModelCheck()); err != nil {
		return err
	}
	bar := progressBar{w: os.Stderr, off: *noProgress, start: time.Now()}
	for !b.Status.Terminal() {
		select {
		case <-ctx.Done():
			bar.end()
			stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			store.Stop(stopCtx)
			return errors.New("interrupted: no output written")
		case <-time.After(200 * time.Millisecond):
		}
		if b, err = store.GetBatch(ctx, "", b.ID); err != nil {
			return err
		}
		bar.draw(b.RequestCounts)
	}
	bar.end()
	if b.Status != batch.StatusCompleted {
		return batchFailure(b)
	}
	if err := writeOutput(ctx, store, *out, b); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d requests: %d succeeded, %d failed, in %s\n", b.RequestCounts.Total, b.RequestCounts.Completed, b.RequestCounts.Failed, time.Since(bar.start).Round(time.Millisecond))
	return nil
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

// inputEndpoint is the url of the first request line: a batch has one
// endpoint, and validation reports every line whose url differs.
func inputEndpoint(input []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(input))
	sc.Buffer(nil, len(input)+1)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var l batch.InputLine
		if err := json.Unmarshal(line, &l); err != nil || l.URL == "" {
			return "", errors.New("the first line of the input is not a request line with a url")
		}
		return l.URL, nil
	}
	return "", errors.New("the input has no request lines")
}

// batchFailure describes a batch that did not complete (validation
// failed): its errors, with line numbers.
func batchFailure(b *batch.Batch) error {
	var msg strings.Builder
	fmt.Fprintf(&msg, "the batch %s", b.Status)
	if b.Errors != nil {
		for _, e := range b.Errors.Data {
			msg.WriteString("\n  ")
			if e.Line != nil {
				fmt.Fprintf(&msg, "line %d: ", *e.Line)
			}
			fmt.Fprintf(&msg, "%s (%s)", e.Message, e.Code)
		}
	}
	return errors.New(msg.String())
}

// writeOutput writes the output file's lines, then the error file's (vLLM
// writes both kinds of line to one file).
func writeOutput(ctx context.Context, store *batch.Store, path string, b *batch.Batch) (err error) {
	var w io.Writer = os.Stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		w = f
	}
	for _, id := range []*string{b.OutputFileID, b.ErrorFileID} {
		if id == nil {
			continue
		}
		_, r, err := store.FileContent(ctx, "", *id)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, r)
		r.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// progressBar draws "[=====>    ] 12/40  3 failed  1.5/s" on one line.
type progressBar struct {
	w     io.Writer
	off   bool
	start time.Time
	drawn bool
}

func (p *progressBar) draw(c batch.RequestCounts) {
	if p.off || c.Total == 0 {
		return
	}
	const width = 30
	done := c.Completed + c.Failed
	filled := width * done / c.Total
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	rate := float64(done) / max(time.Since(p.start).Seconds(), 1e-9)
	fmt.Fprintf(p.w, "\r[%s] %d/%d  %d failed  %.1f/s ", bar, done, c.Total, c.Failed, rate)
	p.drawn = true
}

func (p *progressBar) end() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
