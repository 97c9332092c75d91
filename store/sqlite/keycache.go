package sqlite

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/stele-log/stele"
)

// keyCache lets Key, which authenticates every API request, skip the
// database while no key has changed, without ever letting a revoked, rotated
// or narrowed key keep working.
//
// Every change of a key (UpdateKey), by any process using this database,
// appends one byte to a signal file beside it (<db>-keys) after its commit.
// Key notes the file's identity and size (one stat) before reading a row and
// serves the row from memory only while they are unchanged: a change that
// committed before the lookup started always bumped the file first, so it is
// never missed. Rows changed behind the store's back (SQL typed into the
// database by hand) are re-read within maxAge. Unknown ids are not cached.
type keyCache struct {
	path string
	mu   sync.Mutex
	m    map[string]keyEntry
}

// keyCacheMaxAge bounds how long an entry is served, for changes made
// outside the store.
const keyCacheMaxAge = time.Second

type keyEntry struct {
	k    stele.APIKey
	gen  keyGen
	read time.Time
}

// keyGen identifies a state of the signal file.
type keyGen struct{ ino, size int64 }

func newKeyCache(dbPath string) *keyCache {
	return &keyCache{path: dbPath + "-keys", m: map[string]keyEntry{}}
}

// generation returns the signal file's current state.
func (c *keyCache) generation() (keyGen, error) {
	fi, err := os.Stat(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return keyGen{}, nil
	}
	if err != nil {
		return keyGen{}, err
	}
	g := keyGen{size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		g.ino = int64(st.Ino)
	}
	return g, nil
}

func (c *keyCache) get(id string, g keyGen) (stele.APIKey, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok || e.gen != g || time.Since(e.read) > keyCacheMaxAge {
		return stele.APIKey{}, false
	}
	return cloneKey(e.k), true
}

// put caches k as read after the signal file was in state g.
func (c *keyCache) put(k stele.APIKey, g keyGen, read time.Time) {
	c.mu.Lock()
	c.m[k.ID] = keyEntry{k: cloneKey(k), gen: g, read: read}
	c.mu.Unlock()
}

// changed forgets id here and signals every process that a key changed.
func (c *keyCache) changed(id string) error {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte{'\n'})
	return errors.Join(err, f.Close())
}

func cloneKey(k stele.APIKey) stele.APIKey {
	k.Scopes = slices.Clone(k.Scopes)
	k.SecretHash = slices.Clone(k.SecretHash)
	k.PrevSecretHash = slices.Clone(k.PrevSecretHash)
	return k
}
