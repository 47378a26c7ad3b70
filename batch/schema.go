package batch

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations is the schema's history: migration i (0-based) takes the
// database from user_version i to i+1. Append only; never edit a migration
// that has shipped, since databases in the field have already run it.
var migrations = [][]string{
	// 1: files, batches, and one row per input line with its result.
	{
		`CREATE TABLE files (
			seq        INTEGER PRIMARY KEY AUTOINCREMENT, -- list order (created_at has one-second ties)
			id         TEXT NOT NULL UNIQUE,
			owner      TEXT NOT NULL,
			purpose    TEXT NOT NULL,
			filename   TEXT NOT NULL,
			bytes      INTEGER NOT NULL,
			lines      INTEGER NOT NULL,
			created_at INTEGER NOT NULL
		)`,
		`CREATE INDEX files_by_owner ON files(owner, seq)`,
		`CREATE TABLE batches (
			seq               INTEGER PRIMARY KEY AUTOINCREMENT,
			id                TEXT NOT NULL UNIQUE,
			owner             TEXT NOT NULL,
			endpoint          TEXT NOT NULL,
			input_file_id     TEXT NOT NULL,
			completion_window TEXT NOT NULL,
			status            TEXT NOT NULL,
			-- ids reserved at creation, so that a finalization redone after a
			-- crash writes the same files instead of new ones
			output_plan       TEXT NOT NULL,
			error_plan        TEXT NOT NULL,
			output_file_id    TEXT,
			error_file_id     TEXT,
			errors            TEXT, -- JSON []BatchError of a failed validation
			metadata          TEXT, -- JSON object or NULL
			created_at        INTEGER NOT NULL,
			expires_at        INTEGER NOT NULL,
			in_progress_at    INTEGER,
			finalizing_at     INTEGER,
			completed_at      INTEGER,
			failed_at         INTEGER,
			expired_at        INTEGER,
			cancelling_at     INTEGER,
			cancelled_at      INTEGER,
			total             INTEGER NOT NULL DEFAULT 0,
			completed         INTEGER NOT NULL DEFAULT 0,
			failed            INTEGER NOT NULL DEFAULT 0
		)`,
		`CREATE INDEX batches_by_owner ON batches(owner, seq)`,
		`CREATE INDEX batches_by_status ON batches(status)`,
		`CREATE TABLE lines (
			batch_id      TEXT NOT NULL REFERENCES batches(id),
			line_no       INTEGER NOT NULL, -- 1-based line of the input file
			custom_id     TEXT NOT NULL,
			off           INTEGER NOT NULL, -- the line's bytes in the batch's input copy
			len           INTEGER NOT NULL,
			req_id        TEXT NOT NULL,    -- batch_req_..., fixed at validation
			done          INTEGER NOT NULL DEFAULT 0,
			request_id    TEXT,
			status_code   INTEGER,
			response      BLOB,
			error_code    TEXT,
			error_message TEXT,
			PRIMARY KEY (batch_id, line_no),
			UNIQUE (batch_id, custom_id)
		) WITHOUT ROWID`,
		`CREATE INDEX lines_pending ON lines(batch_id, done, line_no)`,
	},
}

// migrate brings the schema to the newest version in one transaction, so a
// crash mid-migration leaves the old schema intact.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("batch database schema version %d is newer than this server's (%d)", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		for _, stmt := range migrations[i] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("batch schema migration %d: %w", i+1, err)
			}
		}
	}
	// PRAGMA takes no parameters; the value is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return err
	}
	return tx.Commit()
}
