package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stele-log/stele/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "stele.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return storetest.Harness{Store: s, Exec: func(ctx context.Context, stmt string) error {
			_, err := s.w.ExecContext(ctx, stmt)
			return err
		}}
	})
}
