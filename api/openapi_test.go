package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/bundle"
	"github.com/stele-log/stele/checkpoint"
	"go.yaml.in/yaml/v3"
)

// The OpenAPI document (openapi.yaml) is the API's reference. These tests
// hold it to the server: the routes the Server registers and the paths the
// document describes are the same set, each operation's security matches
// the scope its route requires, and every $ref resolves.

// routesOf returns the routes a real Server registers.
func routesOf(t *testing.T) []Route {
	t.Helper()
	skey, err := checkpoint.GenerateKey("openapi.test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := checkpoint.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Key: key})
	t.Cleanup(s.Close)
	return s.Routes()
}

// parseSpec decodes an OpenAPI document into plain maps and slices.
func parseSpec(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("openapi.yaml is not valid YAML: %v", err)
	}
	return doc
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	routes := routesOf(t)
	if len(routes) < 30 {
		t.Fatalf("the server lists %d routes; Routes() lost some", len(routes))
	}
	doc := parseSpec(t, openAPI)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi: %q, want 3.1.x", v)
	}
	for _, p := range checkSpec(doc, routes) {
		t.Error(p)
	}
}

// TestOpenAPICheckFails shows that checkSpec notices each kind of drift,
// on copies of the real document with one thing broken.
func TestOpenAPICheckFails(t *testing.T) {
	routes := routesOf(t)
	cases := []struct {
		name   string
		mutate func(doc map[string]any, routes []Route) []Route
		want   string
	}{
		{"undocumented route", func(doc map[string]any, routes []Route) []Route {
			delete(doc["paths"].(map[string]any), "/v1/keys/{id}/rotate")
			return routes
		}, "POST /v1/keys/{id}/rotate is registered but not documented"},
		{"unregistered path", func(doc map[string]any, routes []Route) []Route {
			return slices.DeleteFunc(slices.Clone(routes), func(r Route) bool { return r.Pattern == "GET /v1/stats/count" })
		}, "GET /v1/stats/count is documented but not registered"},
		{"wrong method", func(doc map[string]any, routes []Route) []Route {
			p := doc["paths"].(map[string]any)["/v1/users/{id}"].(map[string]any)
			p["put"] = p["patch"]
			delete(p, "patch")
			return routes
		}, "PATCH /v1/users/{id} is registered but not documented"},
		{"wrong scope", func(doc map[string]any, routes []Route) []Route {
			op(doc, "/v1/events", "post")["security"] = []any{map[string]any{"apiKey": []any{"events:read"}}}
			return routes
		}, "POST /v1/events: requirement apiKey lists [events:read], want [events:write]"},
		{"session where sessions cannot go", func(doc map[string]any, routes []Route) []Route {
			o := op(doc, "/v1/workspaces", "get")
			o["security"] = append(o["security"].([]any), map[string]any{"session": []any{"operator"}})
			return routes
		}, "GET /v1/workspaces: a session never holds operator"},
		{"missing CSRF", func(doc map[string]any, routes []Route) []Route {
			op(doc, "/v1/keys/{id}", "delete")["security"] = []any{
				map[string]any{"apiKey": []any{"admin"}}, map[string]any{"session": []any{"admin"}}}
			return routes
		}, "DELETE /v1/keys/{id}: a cookie-authenticated change needs csrf"},
		{"public route with security", func(doc map[string]any, routes []Route) []Route {
			op(doc, "/healthz", "get")["security"] = []any{map[string]any{"apiKey": []any{}}}
			return routes
		}, "GET /healthz: public, so security must be []"},
		{"protected route without security", func(doc map[string]any, routes []Route) []Route {
			delete(op(doc, "/v1/export", "get"), "security")
			return routes
		}, "GET /v1/export: no security declared"},
		{"dangling $ref", func(doc map[string]any, routes []Route) []Route {
			op(doc, "/v1/events/{id}", "get")["responses"].(map[string]any)["404"] = map[string]any{"$ref": "#/components/responses/Gone"}
			return routes
		}, "$ref #/components/responses/Gone does not resolve"},
		{"undeclared path parameter", func(doc map[string]any, routes []Route) []Route {
			delete(op(doc, "/v1/users/{id}", "get"), "parameters")
			return routes
		}, "GET /v1/users/{id}: path parameter {id} is not declared"},
		{"no 401", func(doc map[string]any, routes []Route) []Route {
			delete(op(doc, "/v1/checkpoint", "get")["responses"].(map[string]any), "401")
			return routes
		}, "GET /v1/checkpoint: authenticated but declares no 401"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := parseSpec(t, openAPI)
			problems := checkSpec(doc, c.mutate(doc, routes))
			if !slices.Contains(problems, c.want) {
				t.Errorf("checkSpec did not report %q; it reported %q", c.want, problems)
			}
		})
	}
}

func TestOpenAPIServed(t *testing.T) {
	skey, _ := checkpoint.GenerateKey("openapi.test")
	key, _ := checkpoint.ParseKey(skey)
	s := New(Config{Key: key})
	defer s.Close()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/openapi.yaml", nil))
	body, _ := io.ReadAll(w.Body)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/yaml" || !bytes.Equal(body, openAPI) {
		t.Errorf("GET /openapi.yaml: %d %s, %d bytes; want 200 application/yaml, the document's %d bytes",
			w.Code, w.Header().Get("Content-Type"), len(body), len(openAPI))
	}
}

// op returns the operation of method on path in doc.
func op(doc map[string]any, path, method string) map[string]any {
	return doc["paths"].(map[string]any)[path].(map[string]any)[method].(map[string]any)
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// checkSpec lists every way doc disagrees with routes, as sentences.
func checkSpec(doc map[string]any, routes []Route) []string {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	registered := map[string]Route{}
	for _, r := range routes {
		registered[r.Pattern] = r
	}
	paths, _ := doc["paths"].(map[string]any)
	documented := operations(doc)
	for _, r := range routes {
		if _, ok := documented[r.Pattern]; !ok {
			report("%s is registered but not documented", r.Pattern)
		}
	}
	for pattern := range documented {
		if _, ok := registered[pattern]; !ok {
			report("%s is documented but not registered", pattern)
		}
	}
	for pattern, o := range documented {
		r, ok := registered[pattern]
		if !ok {
			continue
		}
		method, path, _ := strings.Cut(pattern, " ")
		checkSecurity(report, pattern, method, r, o)
		checkPathParams(report, doc, pattern, path, paths[path].(map[string]any), o)
		responses, _ := o["responses"].(map[string]any)
		if len(responses) == 0 {
			report("%s: no responses", pattern)
		}
		if !r.Public {
			if _, ok := responses["401"]; !ok {
				report("%s: authenticated but declares no 401", pattern)
			}
		}
	}
	checkRefs(report, doc, doc)
	return problems
}

// checkSecurity holds an operation's security requirements to its route's
// scope: public routes declare none; every other route accepts an API key
// with exactly the route's scope, accepts a session exactly when a user's
// role can hold that scope, and asks a session for the CSRF header on every
// unsafe method.
func checkSecurity(report func(string, ...any), pattern, method string, r Route, o map[string]any) {
	sec, declared := o["security"]
	if !declared {
		report("%s: no security declared", pattern)
		return
	}
	reqs, _ := sec.([]any)
	if r.Public {
		if len(reqs) != 0 {
			report("%s: public, so security must be []", pattern)
		}
		return
	}
	want := []string{}
	if r.Scope != scopeAny {
		want = []string{r.Scope}
	}
	sessionMay := r.Scope == scopeAny
	for _, scopes := range roleScopes {
		sessionMay = sessionMay || slices.Contains(scopes, r.Scope)
	}
	var haveKey, haveSession bool
	for _, req := range reqs {
		req, _ := req.(map[string]any)
		_, withSession := req["session"]
		for scheme, v := range req {
			var got []string
			for _, s := range v.([]any) {
				got = append(got, fmt.Sprint(s))
			}
			switch scheme {
			case "apiKey", "session":
				if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					report("%s: requirement %s lists %v, want %v", pattern, scheme, got, want)
				}
			case "csrf":
				if !withSession || safeMethod(method) || len(got) != 0 {
					report("%s: csrf belongs beside session on unsafe methods only", pattern)
				}
			default:
				report("%s: unknown security scheme %q", pattern, scheme)
			}
		}
		if _, ok := req["apiKey"]; ok {
			haveKey = true
			if len(req) != 1 {
				report("%s: an API key needs nothing beside it", pattern)
			}
		}
		if withSession {
			haveSession = true
			if !sessionMay {
				report("%s: a session never holds %s", pattern, r.Scope)
			}
			if _, csrf := req["csrf"]; !csrf && !safeMethod(method) {
				report("%s: a cookie-authenticated change needs csrf", pattern)
			}
		}
	}
	if !haveKey {
		report("%s: API keys are accepted but not declared", pattern)
	}
	if sessionMay && !haveSession {
		report("%s: sessions are accepted but not declared", pattern)
	}
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// checkPathParams checks that the path's {names} and the operation's
// declared path parameters are the same set.
func checkPathParams(report func(string, ...any), doc map[string]any, pattern, path string, item, o map[string]any) {
	declared := map[string]bool{}
	for _, list := range []any{item["parameters"], o["parameters"]} {
		params, _ := list.([]any)
		for _, p := range params {
			p, _ := resolve(doc, p).(map[string]any)
			if p["in"] == "path" {
				declared[fmt.Sprint(p["name"])] = true
				if p["required"] != true {
					report("%s: path parameter %v must be required", pattern, p["name"])
				}
			}
		}
	}
	for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
		if !declared[m[1]] {
			report("%s: path parameter {%s} is not declared", pattern, m[1])
		}
		delete(declared, m[1])
	}
	for name := range declared {
		report("%s: declares path parameter %s that the path lacks", pattern, name)
	}
}

// resolve follows v's $ref, if it has one, within doc.
func resolve(doc map[string]any, v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	ref, ok := m["$ref"].(string)
	if !ok {
		return v
	}
	target, ok := lookup(doc, ref)
	if !ok {
		return nil
	}
	return target
}

// lookup resolves a local reference "#/a/b~1c" in doc.
func lookup(doc map[string]any, ref string) (any, bool) {
	pointer, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var cur any = doc
	for _, tok := range strings.Split(pointer, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// checkRefs reports every $ref under v that does not resolve in doc.
func checkRefs(report func(string, ...any), doc map[string]any, v any) {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			if _, ok := lookup(doc, ref); !ok {
				report("$ref %s does not resolve", ref)
			}
		}
		for _, e := range v {
			checkRefs(report, doc, e)
		}
	case []any:
		for _, e := range v {
			checkRefs(report, doc, e)
		}
	}
}

// The scopes the document names are the scopes the server knows.
func TestOpenAPIScopes(t *testing.T) {
	doc := parseSpec(t, openAPI)
	enum, _ := lookup(doc, "#/components/schemas/Scope/enum")
	var got []string
	for _, s := range enum.([]any) {
		got = append(got, fmt.Sprint(s))
	}
	if !slices.Equal(got, stele.Scopes) {
		t.Errorf("Scope enum %v, want %v", got, stele.Scopes)
	}
	enum, _ = lookup(doc, "#/components/schemas/Role/enum")
	got = nil
	for _, s := range enum.([]any) {
		got = append(got, fmt.Sprint(s))
	}
	if !slices.Equal(got, stele.Roles) {
		t.Errorf("Role enum %v, want %v", got, stele.Roles)
	}
}

// Every operation that filters events documents every filter parameter the
// server understands, and the order parameter.
func TestOpenAPIFilters(t *testing.T) {
	doc := parseSpec(t, openAPI)
	want := append(stele.FilterParams(), "order")
	filtering := 0
	for pattern, o := range operations(doc) {
		names := map[string]bool{}
		params, _ := o["parameters"].([]any)
		for _, p := range params {
			p, _ := resolve(doc, p).(map[string]any)
			if p["in"] == "query" {
				names[fmt.Sprint(p["name"])] = true
			}
		}
		if !names["actor"] {
			continue
		}
		filtering++
		for _, name := range want {
			if !names[name] {
				t.Errorf("%s filters events but does not document %q", pattern, name)
			}
		}
	}
	if filtering != 6 {
		t.Errorf("%d operations filter events, want 6 (list, export, count and histogram; list and export of the system log)", filtering)
	}
}

// operations maps "METHOD /path" to each operation of doc.
func operations(doc map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	paths, _ := doc["paths"].(map[string]any)
	for path, item := range paths {
		item, _ := item.(map[string]any)
		for _, m := range httpMethods {
			if o, ok := item[m].(map[string]any); ok {
				out[strings.ToUpper(m)+" "+path] = o
			}
		}
	}
	return out
}

// The response schemas name exactly the JSON members of the types the
// handlers encode, so that a member added to a response (or dropped) cannot
// go undocumented.
func TestOpenAPISchemasMatchResponses(t *testing.T) {
	doc := parseSpec(t, openAPI)
	for pointer, v := range map[string]any{
		"#/components/schemas/Error":                              errorBody{},
		"#/components/schemas/Error/properties/error":             errorDetail{},
		"#/components/schemas/Receipt":                            receiptJSON{},
		"#/components/schemas/IngestResponse":                     ingestResponse{},
		"#/components/schemas/EventPage":                          listResponse{},
		"#/components/schemas/EventWithProof":                     eventResponse{},
		"#/components/schemas/InclusionProof":                     inclusionJSON{},
		"#/components/schemas/ConsistencyProof":                   consistencyJSON{},
		"#/components/schemas/Histogram":                          histogramResponse{},
		"#/components/schemas/Histogram/properties/buckets/items": bucketJSON{},
		"#/components/schemas/Count":                              countResponse{},
		"#/components/schemas/Workspace":                          workspaceJSON{},
		"#/components/schemas/Key":                                keyJSON{},
		"#/components/schemas/User":                               userJSON{},
		"#/components/schemas/Session":                            sessionJSON{},
		"#/components/schemas/Event":                              stele.Event{},
		"#/components/schemas/EventInput":                         stele.EventBody{},
		"#/components/schemas/Actor":                              stele.Actor{},
		"#/components/schemas/Resource":                           stele.Resource{},
		"#/components/schemas/Emitter":                            stele.Emitter{},
		"#/components/schemas/BundleHeader":                       bundle.Header{},
		"#/components/schemas/BundleHeader/properties/range":      bundle.Range{},
		"#/components/schemas/BundleLine":                         bundle.Line{},
	} {
		schema, ok := lookup(doc, pointer)
		if !ok {
			t.Errorf("%s: no such schema", pointer)
			continue
		}
		var documented []string
		props, _ := schema.(map[string]any)["properties"].(map[string]any)
		for name := range props {
			documented = append(documented, name)
		}
		slices.Sort(documented)
		want := jsonMembers(reflect.TypeOf(v))
		if strings.HasSuffix(pointer, "/EventInput") {
			// The server sets these; emitters may not send them.
			want = slices.DeleteFunc(want, func(n string) bool { return n == "received_at" || n == "emitter" })
		}
		if !slices.Equal(documented, want) {
			t.Errorf("%s documents %v; the response type has %v", pointer, documented, want)
		}
	}
}

// jsonMembers lists the JSON member names of struct type typ, embedded
// structs flattened, sorted.
func jsonMembers(typ reflect.Type) []string {
	var out []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case f.Anonymous && name == "":
			out = append(out, jsonMembers(f.Type)...)
		case name == "":
			out = append(out, f.Name)
		default:
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
