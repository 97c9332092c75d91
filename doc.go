// Package stele is the domain of the Stele audit log: the event and its leaf,
// the validation rules every event passes before it is logged, the error kinds
// every layer speaks, and the storage contracts a backend must honour.
//
// It imports only the standard library, golang.org/x/mod/sumdb/tlog for the
// Merkle tree types, and the JSON libraries that define canonical bytes
// (a strict RFC 8259 tokenizer and an RFC 8785 canonicalizer). Everything that
// does I/O lives in sub-packages: sequencer (the write path), store/sqlite and
// store/postgres (durable storage), checkpoint (signed tree heads), api (HTTP),
// and cmd/stele (wiring).
package stele
