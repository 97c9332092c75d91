package stele

import "time"

// Input limits. They are part of the API contract (docs/api.md) and every
// one of them is enforced before anything is stored.
const (
	// MaxBodyBytes bounds a request body after any Content-Encoding is
	// removed; larger bodies get 413 without being read to the end.
	MaxBodyBytes = 5 << 20
	// MaxEventBytes bounds one event's JSON as sent (413 beyond it).
	MaxEventBytes = 256 << 10
	// MaxContextBytes bounds an event's context in canonical form.
	MaxContextBytes = 64 << 10
	// MaxDepth bounds JSON nesting; the event object itself is depth 1, so
	// context may nest 30 levels below its own object.
	MaxDepth = 32
	// MaxBatch bounds the events of one request.
	MaxBatch = 1000

	MaxTypeLen     = 128 // bytes of an event type
	MaxCategoryLen = 64  // bytes of a category
	MaxFieldLen    = 256 // bytes of actor, node and resource strings
	MaxIPLen       = 64  // bytes of an ip string before parsing

	// MaxFutureSkew is how far an event's time may lie ahead of the server's
	// clock.
	MaxFutureSkew = 5 * time.Minute
)

// EarliestTime is the earliest event time accepted. Earlier times are
// almost always a zero value or a unit mistake (seconds read as milliseconds).
var EarliestTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// maxExactInt is the largest integer magnitude an IEEE 754 double, and so
// every JCS implementation, represents exactly.
const maxExactInt = 1 << 53
