package stele

import (
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Event is one audit record in its wire and export form (PRODUCT.md, "The
// event"). Its JSON form is the event body followed by the two fields that
// place it in the log: seq and leaf_hash.
type Event struct {
	// Seq is the event's 0-based position in its workspace's log: the index
	// of its leaf in the Merkle tree.
	Seq int64 `json:"seq"`
	EventBody
	// LeafHash is the standard base64 RFC 6962 leaf hash of the body's
	// canonical bytes.
	LeafHash string `json:"leaf_hash"`
}

// EventBody is an event without its position in the log: exactly what the
// leaf hash covers. Its canonical bytes (RFC 8785) are the Merkle leaf.
//
// Optional fields are omitted when absent, never null or empty: every body
// has exactly one canonical form.
type EventBody struct {
	ID         string          `json:"id"`
	Time       time.Time       `json:"time"`
	ReceivedAt time.Time       `json:"received_at"`
	Type       string          `json:"type"`
	Category   string          `json:"category"`
	Actor      Actor           `json:"actor"`
	Node       string          `json:"node,omitempty"`
	Resource   *Resource       `json:"resource,omitempty"`
	IP         string          `json:"ip,omitempty"`
	Outcome    string          `json:"outcome"`
	Context    json.RawMessage `json:"context,omitempty"`
	Emitter    Emitter         `json:"emitter"`
}

// Actor is who or what performed the action.
type Actor struct {
	Type string `json:"type"` // one of ActorTypes
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Resource is what the action concerned.
type Resource struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Emitter records, on the server's authority, how the event reached the log:
// the workspace whose log holds it (binding the leaf to that log, so that an
// event copied into another workspace no longer hashes to a valid leaf there),
// the API key that submitted it and the network address it came from. Events
// the server writes itself (reads of the log, key changes, denials) carry no
// key_id.
type Emitter struct {
	Workspace string `json:"workspace"`
	KeyID     string `json:"key_id,omitempty"`
	IP        string `json:"ip,omitempty"`
}

// Actor types.
const (
	ActorUser    = "user"
	ActorSystem  = "system"
	ActorService = "service"
	ActorAPIKey  = "api_key"
)

// ActorTypes lists the accepted actor types.
var ActorTypes = []string{ActorUser, ActorSystem, ActorService, ActorAPIKey}

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// catalog maps the reference customer's event types to their categories
// (PRODUCT.md, "Catalog"), plus the types Stele writes about itself (user
// management in auth; workspaces and the service's life in auditlog). Types
// outside it take their first segment as category.
var catalog = map[string]string{}

func init() {
	for category, types := range map[string][]string{
		"incidents": {"incident.opened", "incident.acknowledged", "incident.resolved", "incident.closed"},
		"pcap":      {"pcap.started", "pcap.uploaded", "pcap.downloaded"},
		"nodes":     {"node.added", "node.renamed", "node.removed", "node.config_changed", "node.interface_changed"},
		"auth": {"api_key.created", "api_key.rotated", "api_key.revoked", "api_key.rejected", "user.login", "user.logout", "user.login_failed", "access.denied",
			"user.created", "user.updated"},
		"maintenance": {"maintenance.created", "maintenance.started", "maintenance.ended", "maintenance.cancelled"},
		"config":      {"alert_channel.added", "alert_channel.removed", "threshold.changed", "ioc_pattern.added"},
		"auditlog": {"auditlog.queried", "auditlog.exported", "retention.purged", "archive.completed", "archive.failed", "settings.changed", "legal_hold.set", "legal_hold.released",
			"workspace.created", "service.started", "service.stopped"},
	} {
		for _, t := range types {
			catalog[t] = category
		}
	}
}

// CategoryOf returns the category of an event type: the catalog's, or the
// type's first segment.
func CategoryOf(eventType string) string {
	if c, ok := catalog[eventType]; ok {
		return c
	}
	first, _, _ := strings.Cut(eventType, ".")
	return first
}

// Catalog returns the known event types grouped by category, for filters.
func Catalog() map[string][]string {
	out := map[string][]string{}
	for t, c := range catalog {
		out[c] = append(out[c], t)
	}
	return out
}

// displayWords are the words of event types that people write otherwise
// than capitalized: acronyms, and run-together words.
var displayWords = map[string]string{
	"api": "API", "auditlog": "Audit Log", "ip": "IP", "ioc": "IOC", "pcap": "PCAP",
	"sso": "SSO", "mfa": "MFA", "tls": "TLS", "dns": "DNS", "ssh": "SSH", "url": "URL",
}

// DisplayName turns an event type into words for people:
// "incident.opened" → "Incident Opened", "api_key.rotated" → "API Key Rotated",
// "auditlog.queried" → "Audit Log Queried". The dashboard's displayName
// (web/static/js/dom.js) does the same; a browser test keeps them equal.
func DisplayName(eventType string) string {
	words := strings.FieldsFunc(eventType, func(r rune) bool { return r == '.' || r == '_' })
	for i, w := range words {
		if d, ok := displayWords[w]; ok {
			words[i] = d
			continue
		}
		r, size := utf8.DecodeRuneInString(w)
		words[i] = string(unicode.ToUpper(r)) + w[size:]
	}
	return strings.Join(words, " ")
}

// validName reports whether s is a lowercase identifier segment list joined by
// sep: segments start with a letter and hold letters, digits and underscores.
func validName(s string, sep byte, minSegments, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	segments, start := 0, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == sep && sep != 0:
			if start {
				return false
			}
			segments++
			start = true
		case c >= 'a' && c <= 'z':
			start = false
		case (c >= '0' && c <= '9') || c == '_':
			if start {
				return false
			}
		default:
			return false
		}
	}
	if start {
		return false
	}
	return segments+1 >= minSegments
}

// ValidType reports whether t is a dotted lowercase event type with at least
// two segments, such as "incident.opened" or "api_key.rotated".
func ValidType(t string) bool { return validName(t, '.', 2, MaxTypeLen) }

// ValidCategory reports whether c is a lowercase identifier such as "pcap".
func ValidCategory(c string) bool { return validName(c, 0, 1, MaxCategoryLen) }

// ValidTypePattern reports whether p is a type filter: an exact type, or a
// prefix ending in ".*" such as "pcap.*".
func ValidTypePattern(p string) bool {
	if prefix, ok := strings.CutSuffix(p, ".*"); ok {
		return validName(prefix, '.', 1, MaxTypeLen)
	}
	return ValidType(p)
}

// printableText reports whether s is valid UTF-8 of at most max bytes.
// Control and bidi characters are allowed and stored verbatim (the hash covers
// what the emitter sent); every output escapes or isolates them.
func printableText(s string, max int) bool {
	return len(s) <= max && utf8.ValidString(s)
}
