package storage

import (
	"sync"

	"github.com/privateline/privateline"
)

// userCache keeps decoded user records, which every request reads (the
// caller, recipients, retention defaults) and which rarely change.
//
// Writers of a user record invalidate it once the change is applied
// (before account deletion releases its stripes, so a delivery under the
// stripes never finds a deleted user here). A reader notes the generation
// before reading the store and fills the cache only if no invalidation
// happened meanwhile, so a value read before a change is never cached
// after it.
type userCache struct {
	mu     sync.Mutex
	gen    uint64 // guarded by mu: invalidations so far
	byID   map[ID]*User
	byName map[privateline.Username]ID
}

// maxCachedUsers bounds the cache (a record is a few KiB); when full it
// starts again.
const maxCachedUsers = 10_000

func (c *userCache) get(id ID) (*User, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := c.byID[id]; u != nil {
		cp := *u
		return &cp, c.gen
	}
	return nil, c.gen
}

func (c *userCache) idOf(name privateline.Username) (ID, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.byName[name]
	return id, ok, c.gen
}

// put caches u if nothing was invalidated since generation gen.
func (c *userCache) put(u *User, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.byID == nil || len(c.byID) >= maxCachedUsers {
		c.byID, c.byName = map[ID]*User{}, map[privateline.Username]ID{}
	}
	cp := *u
	c.byID[u.ID] = &cp
	c.byName[u.Username] = u.ID
}

// invalidate forgets user id.
func (c *userCache) invalidate(id ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if u := c.byID[id]; u != nil {
		delete(c.byName, u.Username)
		delete(c.byID, id)
	}
}
