package batch

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

func TestOpenUsesWALAndMigrates(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	var mode string
	var version, timeout int
	if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow("PRAGMA busy_timeout").Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || version != len(migrations) || timeout <= 0 {
		t.Fatalf("journal_mode %q, user_version %d (want %d), busy_timeout %d", mode, version, len(migrations), timeout)
	}
	f := upload(t, s, "", chatLines(1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if _, err := s.GetFile(context.Background(), "", f.ID); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetFile after Close: %v, want ErrClosed", err)
	}
	// Reopening runs no migration again and keeps the data.
	s2 := openStore(t, dir)
	if _, err := s2.GetFile(context.Background(), "", f.ID); err != nil {
		t.Fatalf("the file after reopening: %v", err)
	}
}

func TestOpenRefusesANewerSchema(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if _, err := s.db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(testConfig(dir), zaptest.NewLogger(t)); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a schema from the future: %v", err)
	}
}

func TestMigrationIsAllOrNothing(t *testing.T) {
	// A migration that fails half-way leaves version 0 and no tables.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db")+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	saved := migrations
	t.Cleanup(func() { migrations = saved })
	migrations = [][]string{{`CREATE TABLE a (x INTEGER)`, `CREATE TABLE broken (`}}
	if err := migrate(context.Background(), db); err == nil {
		t.Fatal("a broken migration succeeded")
	}
	var version, tables int
	db.QueryRow("PRAGMA user_version").Scan(&version)
	db.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'table'").Scan(&tables)
	if version != 0 || tables != 0 {
		t.Fatalf("after a failed migration: user_version %d, %d tables", version, tables)
	}
	migrations = append(migrations[:0:0], []string{`CREATE TABLE a (x INTEGER)`}, []string{`ALTER TABLE a ADD COLUMN y INTEGER`})
	if err := migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	if err := migrate(context.Background(), db); err != nil {
		t.Fatalf("migrating an up-to-date database: %v", err)
	}
	db.QueryRow("PRAGMA user_version").Scan(&version)
	if version != 2 {
		t.Fatalf("user_version %d, want 2", version)
	}
}

func TestOneStorePerDataDir(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if _, err := Open(testConfig(dir), zaptest.NewLogger(t)); err == nil {
		t.Fatal("a second Open of the same data dir succeeded")
	}
	s.Close()
	openStore(t, dir) // the lock goes with Close
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err == nil || !strings.Contains(err.Error(), "data_dir") {
		t.Fatalf("defaults without data_dir: %v", err)
	}
	c := testConfig(t.TempDir())
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"max_file_bytes":  func(c *Config) { c.MaxFileBytes = 0 },
		"max_file_lines":  func(c *Config) { c.MaxFileLines = -1 },
		"max_concurrency": func(c *Config) { c.MaxConcurrency = 0 },
		"poll_interval":   func(c *Config) { c.PollInterval = 0 },
	} {
		bad := c
		mut(&bad)
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestOpenSweepsLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	f := upload(t, s, "", chatLines(2))
	s.Close()
	// What a crash mid-upload or mid-finalization leaves behind.
	for _, p := range []string{"files/file-PARTIAL.part", "files/file-NOROW", "inputs/batch_GONE.jsonl"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	openStore(t, dir)
	entries, _ := os.ReadDir(filepath.Join(dir, "files"))
	if len(entries) != 1 || entries[0].Name() != f.ID {
		t.Fatalf("files after the sweep: %v, want only %s", entries, f.ID)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "inputs")); len(entries) != 0 {
		t.Fatalf("input links of no open batch survived: %v", entries)
	}
}
