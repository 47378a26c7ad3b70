package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/qwen3-lora/qwen3-server/sampling"
)

// HTTPResult is one concurrency level measured through an HTTP server.
type HTTPResult struct {
	Server      string
	N           int
	DecodeTotal float64 // steady-state tokens/s over all streams
	PerStream   float64
	TTFTp50     time.Duration
	TTFTp95     time.Duration
	Tokens      int
}

// HTTPOptions describe the clients.
type HTTPOptions struct {
	BaseURL   string // http://host:port/v1
	Model     string
	Prompts   []string // one per client
	GenLen    int
	IgnoreEOS bool // send vLLM's ignore_eos (servers that know it)
}

// RandomTextPrompts builds n distinct prompts of about `words` words: plain
// text both servers tokenize the same way, so neither gains a prompt cache.
func RandomTextPrompts(n, words int) []string {
	vocab := strings.Fields("the of and to in is was for on that with as by at from his her an which are this be has had not but what all were when we there can more if out so up said one about them into than")
	r := rand.New(rand.NewPCG(7, 7))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		fmt.Fprintf(&b, "Client %d: ", i)
		for j := 0; j < words; j++ {
			b.WriteString(vocab[r.IntN(len(vocab))])
			b.WriteByte(' ')
		}
		out[i] = b.String()
	}
	return out
}

// HTTPRun runs len(o.Prompts) concurrent streaming /v1/completions clients.
func HTTPRun(ctx context.Context, name string, o HTTPOptions) (HTTPResult, error) {
	n := len(o.Prompts)
	res := HTTPResult{Server: name, N: n}
	stamps := make([][]time.Time, n)
	errs := make([]error, n)
	starts := make([]time.Time, n)
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n + 4, MaxConnsPerHost: 0}}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{
				"model": o.Model, "prompt": o.Prompts[i], "max_tokens": o.GenLen, "stream": true,
				"temperature": *sampling.Thinking.Temperature, "top_p": *sampling.Thinking.TopP, "top_k": *sampling.Thinking.TopK,
			}
			if o.IgnoreEOS {
				body["ignore_eos"] = true
			}
			b, _ := json.Marshal(body)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, o.BaseURL+"/completions", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			starts[i] = time.Now()
			resp, err := client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				var buf bytes.Buffer
				buf.ReadFrom(resp.Body)
				errs[i] = fmt.Errorf("%s: HTTP %d: %s", name, resp.StatusCode, buf.String())
				return
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<16), 1<<20)
			for sc.Scan() {
				line := sc.Bytes()
				data, ok := bytes.CutPrefix(line, []byte("data: "))
				if !ok || bytes.Equal(data, []byte("[DONE]")) {
					continue
				}
				var ev struct {
					Choices []struct {
						Text string `json:"text"`
					} `json:"choices"`
				}
				if json.Unmarshal(data, &ev) == nil && len(ev.Choices) > 0 && ev.Choices[0].Text != "" {
					stamps[i] = append(stamps[i], time.Now())
				}
			}
			errs[i] = sc.Err()
		}()
	}
	wg.Wait()
	var ttfts []time.Duration
	for i := range n {
		if errs[i] != nil {
			return res, errs[i]
		}
		if len(stamps[i]) == 0 {
			return res, fmt.Errorf("%s: client %d got no tokens", name, i)
		}
		res.Tokens += len(stamps[i])
		ttfts = append(ttfts, stamps[i][0].Sub(starts[i]))
	}
	res.TTFTp50, res.TTFTp95 = percentiles(ttfts)
	total, _, err := steadyState(stamps)
	if err != nil {
		return res, fmt.Errorf("%s at N=%d: %w", name, n, err)
	}
	res.DecodeTotal = total
	res.PerStream = res.DecodeTotal / float64(n)
	return res, nil
}
