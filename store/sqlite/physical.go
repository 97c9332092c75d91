package sqlite

import (
	"context"
	"fmt"
	"strings"
)

// CheckPhysical runs SQLite's own consistency check of the database file
// (PRAGMA integrity_check: every page, B-tree and index entry) and returns
// nil, or an error quoting its first findings. It finds corruption the
// signed tree cannot see, such as a damaged index page (RELIABILITY.md
// TAM-17). It only reads, and takes about as long as reading the whole file.
func (s *Store) CheckPhysical(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, "PRAGMA integrity_check(10)")
	if err != nil {
		return fmt.Errorf("couldn't run PRAGMA integrity_check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("PRAGMA integrity_check: %w", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("PRAGMA integrity_check failed: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("the database file is damaged (PRAGMA integrity_check): %s", strings.Join(problems, "; "))
	}
	return nil
}
