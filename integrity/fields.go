package integrity

import (
	"errors"
	"time"
)

// eventFields reads, from an event's canonical bytes, the two fields the
// check needs beyond the leaf hash: received_at and emitter.workspace. It
// walks the top-level object without decoding the rest, so that the check
// stays close to the cost of reading and hashing the rows; stored bodies
// are RFC 8785 output (no whitespace, member names without escapes), and a
// body that is not is caught by the leaf hash, which covers every byte.
func eventFields(body []byte) (receivedAt time.Time, workspace string, err error) {
	var haveTime, haveWS bool
	err = members(body, func(name, value []byte) error {
		switch string(name) {
		case "received_at":
			s, ok := plainString(value)
			if !ok {
				return errors.New("received_at is not a string")
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return errors.New("received_at is not an RFC 3339 time")
			}
			receivedAt, haveTime = t, true
		case "emitter":
			return members(value, func(name, value []byte) error {
				if string(name) == "workspace" {
					s, ok := plainString(value)
					if !ok {
						return errors.New("emitter.workspace is not a string")
					}
					workspace, haveWS = s, true
				}
				return nil
			})
		}
		return nil
	})
	switch {
	case err != nil:
		return time.Time{}, "", err
	case !haveTime:
		return time.Time{}, "", errors.New("no received_at")
	case !haveWS:
		return time.Time{}, "", errors.New("no emitter.workspace")
	}
	return receivedAt, workspace, nil
}

var errSyntax = errors.New("not a well-formed JSON object")

// members calls fn with the raw name (between its quotes) and raw value of
// each member of the JSON object obj, which must be compact (no whitespace
// between tokens, as canonical JSON is).
func members(obj []byte, fn func(name, value []byte) error) error {
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return errSyntax
	}
	i := 1
	if obj[i] == '}' {
		if i+1 != len(obj) {
			return errSyntax
		}
		return nil
	}
	for {
		end, err := skipString(obj, i)
		if err != nil {
			return err
		}
		name := obj[i+1 : end-1]
		if end >= len(obj) || obj[end] != ':' {
			return errSyntax
		}
		vstart := end + 1
		vend, err := skipValue(obj, vstart)
		if err != nil {
			return err
		}
		if err := fn(name, obj[vstart:vend]); err != nil {
			return err
		}
		if vend >= len(obj) {
			return errSyntax
		}
		switch obj[vend] {
		case ',':
			i = vend + 1
		case '}':
			if vend+1 != len(obj) {
				return errSyntax
			}
			return nil
		default:
			return errSyntax
		}
	}
}

// skipString returns the index just after the string starting at b[i].
func skipString(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errSyntax
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errSyntax
}

// skipValue returns the index just after the compact JSON value at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errSyntax
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
			j++
		}
		if j == i {
			return 0, errSyntax
		}
		return j, nil
	}
}

// plainString returns the contents of a JSON string value without escapes.
func plainString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	for _, c := range v[1 : len(v)-1] {
		if c == '\\' || c == '"' {
			return "", false
		}
	}
	return string(v[1 : len(v)-1]), true
}
