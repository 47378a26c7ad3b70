// Package batch owns durable batch jobs: OpenAI's Files and Batch APIs
// behind a Go interface, kept in an embedded SQLite database (metadata and
// per-line progress) and a data folder (the files), and the runner that
// executes batch lines through an Executor and survives restarts.
//
// It must not import server/, engine/ or cmd/: the server maps its typed
// errors to HTTP answers and implements Executor and ModelCheck on top of
// its handlers, so the same core serves the HTTP API and offline runs.
package batch

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// Config is the batch section of the server configuration.
type Config struct {
	// DataDir holds batch.db and the files (files/<id>); required.
	DataDir string `mapstructure:"data_dir"`
	// MaxFileBytes and MaxFileLines limit an upload (OpenAI: 200 MB, 50,000
	// requests).
	MaxFileBytes int64 `mapstructure:"max_file_bytes"`
	MaxFileLines int   `mapstructure:"max_file_lines"`
	// MaxConcurrency caps the batch lines running at once, over all batches.
	MaxConcurrency int `mapstructure:"max_concurrency"`
	// PollInterval is how often the runner looks for expired batches and
	// resumes after ErrRetryLater; new batches, cancels and finished lines
	// wake it at once.
	PollInterval time.Duration `mapstructure:"poll_interval"`
}

// DefaultConfig is the one source of the batch defaults (configs/ reads
// them from here). DataDir has no default: the caller picks the folder.
func DefaultConfig() Config {
	return Config{
		MaxFileBytes:   200 << 20,
		MaxFileLines:   50_000,
		MaxConcurrency: 4,
		PollInterval:   time.Second,
	}
}

// Validate checks the values before Open uses them.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("batch.data_dir is required"))
	}
	if c.MaxFileBytes <= 0 {
		errs = append(errs, errors.New("batch.max_file_bytes must be positive"))
	}
	if c.MaxFileLines <= 0 {
		errs = append(errs, errors.New("batch.max_file_lines must be positive"))
	}
	if c.MaxConcurrency < 1 {
		errs = append(errs, errors.New("batch.max_concurrency must be at least 1"))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, errors.New("batch.poll_interval must be positive"))
	}
	return errors.Join(errs...)
}

// CompletionWindow is the only window the API accepts, as OpenAI.
const CompletionWindow = "24h"

// Option changes how Open sets the store up.
type Option func(*Store)

// WithCompletionWindow makes "24h" stand for d: for tests of expiry, which
// cannot wait a day. The API still accepts only "24h".
func WithCompletionWindow(d time.Duration) Option { return func(s *Store) { s.window = d } }

// Store is the batch store and, once started, its runner.
type Store struct {
	cfg    Config
	log    *zap.Logger
	db     *sql.DB
	lock   *os.File // flock on <data_dir>/lock: one process per data folder
	window time.Duration
	now    func() time.Time

	wake chan struct{} // wakes the runner's loop; buffered 1

	mu     sync.Mutex
	closed bool
	run    *runner // nil until Start

	// beforeFinalCommit, when set (tests), runs after the output files are
	// written and before the finalization commits; an error aborts it, as a
	// crash at that point would.
	beforeFinalCommit func(batchID string) error
}

// Open opens (creating if needed) the store in cfg.DataDir: the database in
// WAL mode with a busy timeout, migrated to the newest schema. Files left
// by an interrupted upload or finalization are removed. A second Open of
// the same folder, from any process, fails while the first is open.
func Open(cfg Config, log *zap.Logger, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{cfg: cfg, log: log.Named("batch"), window: 24 * time.Hour, now: time.Now, wake: make(chan struct{}, 1)}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{s.filesDir(), s.inputsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("batch data dir: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(cfg.DataDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("batch data dir: %w", err)
	}
	// Two processes on one folder would run the same lines twice.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("batch data dir %s is in use by another process: %w", cfg.DataDir, err)
	}
	s.lock = lock
	if err := s.openDB(); err != nil {
		s.release()
		return nil, err
	}
	if err := s.sweep(context.Background()); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

func (s *Store) openDB() error {
	// _txlock=immediate: every transaction here writes, and taking the write
	// lock at BEGIN makes a busy writer wait (busy_timeout) instead of
	// failing when a read lock cannot be upgraded. synchronous=FULL: a
	// recorded line result survives power loss, not only a crash.
	dsn := "file:" + filepath.Join(s.cfg.DataDir, "batch.db") +
		"?_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("batch database: %w", err)
	}
	s.db = db
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("batch database: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("batch database: journal_mode is %q, want wal", mode)
	}
	if err := migrate(context.Background(), db); err != nil {
		return fmt.Errorf("batch database: %w", err)
	}
	return nil
}

// release closes the database and drops the folder lock.
func (s *Store) release() {
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			s.log.Warn("closing the batch database", zap.Error(err))
		}
	}
	s.lock.Close() // closing the descriptor drops the flock
}

// Close stops the runner (cancelling running lines at once: use Stop first
// for a graceful end) and closes the store. It may be called more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	r := s.run
	s.mu.Unlock()
	if r != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r.stop(ctx)
	}
	s.release()
	return nil
}

// Config is the configuration the store was opened with (the server reads
// the upload limit from it, to cap the multipart body).
func (s *Store) Config() Config { return s.cfg }

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// OwnerForKey is the owner of the objects an API key creates: a hash, so
// the database holds no key; "" when the server runs without keys.
func OwnerForKey(apiKey string) string {
	if apiKey == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(apiKey))
	return hex.EncodeToString(sum[:])
}

func (s *Store) filesDir() string          { return filepath.Join(s.cfg.DataDir, "files") }
func (s *Store) inputsDir() string         { return filepath.Join(s.cfg.DataDir, "inputs") }
func (s *Store) filePath(id string) string { return filepath.Join(s.filesDir(), id) }

// inputPath is a batch's own link to its input file, so that deleting the
// file (which OpenAI allows) does not pull the lines from under the runner.
func (s *Store) inputPath(batchID string) string {
	return filepath.Join(s.inputsDir(), batchID+".jsonl")
}

func (s *Store) unix() int64 { return s.now().Unix() }

// newID is prefix and 26 random base32 characters; ids never contain a
// path separator or a dot.
func newID(prefix string) string { return prefix + rand.Text() }

// validID reports whether id has prefix and only letters and digits after
// it: ids from clients are checked with it before any lookup or path use.
func validID(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || rest == "" || len(rest) > 64 {
		return false
	}
	for _, c := range rest {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// sweep removes what an interrupted upload or finalization left behind:
// partial files, files without a row, and input links of batches that are
// over. It runs in Open, before any runner, so nothing is being written.
func (s *Store) sweep(ctx context.Context) error {
	files, err := s.idSet(ctx, `SELECT id FROM files`)
	if err != nil {
		return err
	}
	if err := s.removeUnless(s.filesDir(), func(name string) bool { return files[name] }); err != nil {
		return err
	}
	open, err := s.idSet(ctx, `SELECT id FROM batches WHERE status IN ('validating','in_progress','finalizing','cancelling')`)
	if err != nil {
		return err
	}
	return s.removeUnless(s.inputsDir(), func(name string) bool {
		id, ok := strings.CutSuffix(name, ".jsonl")
		return ok && open[id]
	})
}

// idSet runs a query of one text column.
func (s *Store) idSet(ctx context.Context, query string) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	set := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		set[id] = true
	}
	return set, rows.Err()
}

func (s *Store) removeUnless(dir string, keep func(string) bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if keep(e.Name()) {
			continue
		}
		s.log.Info("removing a leftover file", zap.String("path", filepath.Join(dir, e.Name())))
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// syncDir makes a rename or create in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
