package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/store/storetest"
)

func pendingWords(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(context.Background(), "SELECT count(*) FROM events_text_pending").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func indexedMatches(t *testing.T, s *Store, word string) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(context.Background(), "SELECT count(*) FROM events_text WHERE events_text MATCH ?", `"`+word+`"`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeferredTextIndex: words of appended events are staged and moved into
// the text index; a free-text query right after an append finds the event
// (read-your-writes) however recently it was staged; words a crash left
// staged are indexed when the database is opened again.
func TestDeferredTextIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "stele.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWorkspace(ctx, stele.Workspace{ID: "acme", Name: "Acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	log := storetest.NewLog("acme")
	g := eventgen.New(7)
	body := g.Event(time.Now(), true)
	body.Actor = stele.Actor{Type: stele.ActorUser, ID: "zebulon@acme.com", Name: "Zebulon"}
	log.Append(t, s, []stele.EventBody{body})
	for i := range 20 { // a query right after each append finds it
		b := g.Event(time.Now(), true)
		b.Node = "node-quux"
		log.Append(t, s, []stele.EventBody{b})
		n, err := s.Count(ctx, "acme", stele.Query{Filter: stele.Filter{Text: []string{"quux"}}})
		if err != nil || n != int64(i+1) {
			t.Fatalf("after %d appends, text count %d (%v)", i+1, n, err)
		}
	}
	got, err := s.Query(ctx, "acme", stele.Query{Filter: stele.Filter{Text: []string{"zebulon"}}, Limit: 10})
	if err != nil || len(got) != 1 || got[0].Seq != 0 {
		t.Fatalf("text query: %v %v", got, err)
	}
	if n := pendingWords(t, s); n != 0 {
		t.Fatalf("%d rows still staged after a text query", n)
	}

	// A crash with words staged: stop the indexer without moving them.
	b := g.Event(time.Now(), true)
	b.Node = "node-crashed"
	close(s.text.stop)
	<-s.text.done
	s.text = nil
	log.Append(t, s, []stele.EventBody{b})
	if n := pendingWords(t, s); n != 1 {
		t.Fatalf("want 1 staged row before the crash, have %d", n)
	}
	for _, st := range s.prepared {
		st.Close()
	}
	s.w.Close()
	s.r.Close()

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := pendingWords(t, s); n != 0 {
		t.Fatalf("%d rows still staged after reopening", n)
	}
	if n := indexedMatches(t, s, "crashed"); n != 1 {
		t.Fatalf("the staged event is not in the text index after reopening (%d matches)", n)
	}
}
