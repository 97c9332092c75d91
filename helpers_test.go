package stele

import "net/url"

func urlValues(s string) (url.Values, error) { return url.ParseQuery(s) }
