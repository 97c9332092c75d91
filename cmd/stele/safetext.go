package main

import (
	"strconv"
	"strings"
	"unicode"
)

// safeText makes attacker-controlled text safe for a terminal: control
// characters (CR, LF, ESC…), and bidi and other invisible format characters,
// are shown as escapes instead of acting (RELIABILITY.md INP-06), so that no
// value can forge a line, move the cursor or colour the screen.
func safeText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' || r == unicode.ReplacementChar {
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
