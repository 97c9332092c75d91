package stele

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// checkStrictJSON accepts exactly one JSON value in data that every parser
// reads the same way (RELIABILITY.md D8): valid UTF-8 with no lone surrogate
// escapes, no duplicate object member names, nesting no deeper than MaxDepth,
// and numbers that survive the IEEE 754 round trip that RFC 8785 prescribes
// (no overflow, no integer beyond ±2^53). Error fields are JSON paths under
// prefix, such as "events[2].context.n".
func checkStrictJSON(data []byte, prefix string, maxDepth int) error {
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	for {
		kind := dec.PeekKind()
		if kind == 0 {
			break // read error or EOF; ReadToken reports which
		}
		if (kind == '{' || kind == '[') && dec.StackDepth() >= maxDepth {
			return FieldError(pathOf(prefix, dec.StackPointer()), "JSON nests deeper than %d levels", MaxDepth)
		}
		tok, err := dec.ReadToken()
		if err != nil {
			return jsonSyntaxError(err, prefix)
		}
		if tok.Kind() == '0' {
			if err := checkNumber(tok.String()); err != nil {
				return FieldError(pathOf(prefix, dec.StackPointer()), "%s", err)
			}
		}
		if dec.StackDepth() == 0 {
			break
		}
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			return FieldError(prefix, "unexpected data after the JSON value")
		}
		return jsonSyntaxError(err, prefix)
	}
	return nil
}

func jsonSyntaxError(err error, prefix string) error {
	var serr *jsontext.SyntacticError
	if errors.As(err, &serr) {
		msg := serr.Err.Error()
		switch {
		case errors.Is(serr.Err, jsontext.ErrDuplicateName):
			msg = "duplicate object member name"
		case strings.Contains(msg, "UTF-8") || strings.Contains(msg, "surrogate"):
			msg = "invalid UTF-8 or unpaired surrogate escape"
		}
		return FieldError(pathOf(prefix, serr.JSONPointer), "invalid JSON: %s", strings.TrimPrefix(msg, "jsontext: "))
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return FieldError(prefix, "invalid JSON: unexpected end of input")
	}
	return FieldError(prefix, "invalid JSON")
}

// checkNumber enforces the number policy: a JSON number is accepted when an
// IEEE 754 double holds it without overflow, and integers only when exact.
func checkNumber(lit string) error {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) {
		return errors.New("number out of range")
	}
	if !strings.ContainsAny(lit, ".eE") {
		n, err := strconv.ParseInt(lit, 10, 64)
		if err != nil || n > maxExactInt || n < -maxExactInt {
			return errors.New("integer beyond ±2^53 cannot be kept exactly; send it as a string")
		}
	}
	return nil
}

// pathOf renders a JSON pointer under prefix as a dotted path with indices:
// "/events/3/actor/type" → "events[3].actor.type".
func pathOf(prefix string, p jsontext.Pointer) string {
	var b strings.Builder
	b.WriteString(prefix)
	for tok := range p.Tokens() {
		if isIndex(tok) {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

func isIndex(tok string) bool {
	if tok == "" {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return false
		}
	}
	return true
}

// joinPath appends a member name to a dotted path.
func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}
