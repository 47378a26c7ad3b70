// Command schemagen writes the JSON schemas that kubeconform validates the
// Helm chart's output against, from sources the Go module proxy serves (see
// the Makefile's deploy-schemas target): Kubernetes' own OpenAPI v2 document
// (k8s.io/kubernetes's api/openapi-spec/swagger.json) and the
// CustomResourceDefinitions of the custom resources the chart renders.
//
// It does what kubeconform's openapi2jsonschema.py does for its published
// "standalone-strict" schemas, in Go because the machines that run the tests
// have no Python packages: every object that lists properties refuses others
// (strict), optional fields may be null (the API server treats null as unset),
// int-or-string and quantities take numbers or strings, and apiVersion/kind
// are pinned to the kind's own. Unlike the published schemas it keeps $refs
// (with the definitions each kind reaches, beside it in the same file) rather
// than inlining them, so recursive types need no special case; kubeconform
// resolves them the same way.
//
// Layout written under -out (the two -schema-location templates the test
// passes to kubeconform):
//
//	v<version>-standalone-strict/<kind>-<group prefix>-<version>.json   Kubernetes kinds
//	crds/<group>/<kind>_<version>.json                                   custom resources
//	kubernetes-version                                                   the version, for the test
//
// This package must not import the server's packages: it is offline tooling.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// schema is one JSON-schema node as decoded from JSON or YAML.
type schema = map[string]any

const (
	defsPrefix = "#/definitions/"
	objectMeta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
)

// special replaces two Kubernetes types whose OpenAPI form is narrower than
// what the API server (and every Kubernetes tool) accepts: both take a number
// as well as a string. openapi2jsonschema does the same.
var special = map[string]schema{
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"oneOf": []any{schema{"type": "string"}, schema{"type": "integer"}}},
	"io.k8s.apimachinery.pkg.api.resource.Quantity":   {"oneOf": []any{schema{"type": "string"}, schema{"type": "number"}}},
}

type crdFiles []string

func (c *crdFiles) String() string     { return strings.Join(*c, ",") }
func (c *crdFiles) Set(v string) error { *c = append(*c, v); return nil }

func main() {
	swagger := flag.String("swagger", "", "Kubernetes OpenAPI v2 document (api/openapi-spec/swagger.json)")
	version := flag.String("kube-version", "", "Kubernetes version of that document, e.g. 1.35.4")
	out := flag.String("out", "", "folder to write the schemas to")
	var crds crdFiles
	flag.Var(&crds, "crd", "CustomResourceDefinition YAML file (repeatable)")
	flag.Parse()
	if *swagger == "" || *version == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: schemagen -swagger swagger.json -kube-version 1.35.4 -out DIR [-crd FILE]...")
		os.Exit(2)
	}
	n, err := run(*swagger, strings.TrimPrefix(*version, "v"), *out, crds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
	fmt.Printf("schemagen: %d schemas for Kubernetes v%s and %d CRD files in %s\n", n, strings.TrimPrefix(*version, "v"), len(crds), *out)
}

func run(swaggerPath, version, out string, crds []string) (int, error) {
	defs, err := readSwagger(swaggerPath)
	if err != nil {
		return 0, err
	}
	if err := os.RemoveAll(out); err != nil {
		return 0, err
	}
	written := 0
	kubeDir := filepath.Join(out, "v"+version+"-standalone-strict")
	for _, name := range slices.Sorted(maps.Keys(defs)) {
		for _, gvk := range groupVersionKinds(defs[name]) {
			doc, err := kindSchema(defs, name, gvk)
			if err != nil {
				return 0, err
			}
			if err := writeJSON(filepath.Join(kubeDir, kubeFileName(gvk)), doc); err != nil {
				return 0, err
			}
			written++
		}
	}
	for _, path := range crds {
		docs, err := crdSchemas(defs, path)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		for file, doc := range docs {
			if err := writeJSON(filepath.Join(out, "crds", file), doc); err != nil {
				return 0, err
			}
			written++
		}
	}
	return written, os.WriteFile(filepath.Join(out, "kubernetes-version"), []byte(version+"\n"), 0o644)
}

func readSwagger(path string) (map[string]schema, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Definitions map[string]schema `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Definitions) == 0 {
		return nil, fmt.Errorf("%s: no definitions (not an OpenAPI v2 document?)", path)
	}
	return doc.Definitions, nil
}

// gvk is one entry of a definition's x-kubernetes-group-version-kind.
type gvk struct{ Group, Version, Kind string }

func (g gvk) apiVersion() string {
	if g.Group == "" {
		return g.Version
	}
	return g.Group + "/" + g.Version
}

func groupVersionKinds(def schema) []gvk {
	list, _ := def["x-kubernetes-group-version-kind"].([]any)
	var out []gvk
	for _, item := range list {
		m, _ := item.(schema)
		g := gvk{str(m["group"]), str(m["version"]), str(m["kind"])}
		if g.Kind != "" && g.Version != "" {
			out = append(out, g)
		}
	}
	return out
}

// kubeFileName is kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json:
// the kind in lower case, the group's first label and the version.
func kubeFileName(g gvk) string {
	suffix := "-" + strings.ToLower(g.Version)
	if g.Group != "" {
		suffix = "-" + strings.ToLower(strings.Split(g.Group, ".")[0]) + suffix
	}
	return strings.ToLower(g.Kind) + suffix + ".json"
}

// kindSchema is the document for one Kubernetes kind: its definition,
// converted, with every definition it reaches under "definitions".
func kindSchema(defs map[string]schema, name string, g gvk) (schema, error) {
	root := convert(defs[name], false)
	pinTypeMeta(root, g)
	return withDefinitions(root, defs, reachable(defs, []string{name}))
}

// pinTypeMeta makes apiVersion and kind accept only the kind's own values,
// so a manifest with the wrong group fails instead of matching by name.
func pinTypeMeta(root schema, g gvk) {
	props, _ := root["properties"].(schema)
	if props == nil {
		return
	}
	props["apiVersion"] = schema{"type": "string", "enum": []any{g.apiVersion()}}
	props["kind"] = schema{"type": "string", "enum": []any{g.Kind}}
	req := map[string]bool{}
	for _, r := range asStrings(root["required"]) {
		req[r] = true
	}
	req["apiVersion"], req["kind"] = true, true
	root["required"] = sortedSet(req)
}

func withDefinitions(root schema, defs map[string]schema, names []string) (schema, error) {
	if len(names) == 0 {
		return root, nil
	}
	out := schema{}
	for _, n := range names {
		d, ok := defs[n]
		if !ok {
			return nil, fmt.Errorf("$ref to missing definition %s", n)
		}
		if s, ok := special[n]; ok {
			out[n] = orNull(deepCopy(s), true)
			continue
		}
		// Definitions take null themselves, so that an optional field that
		// refers to one stays a plain $ref (and errors stay readable).
		out[n] = convert(d, true)
	}
	root["definitions"] = out
	return root, nil
}

// reachable lists, sorted, the definitions reachable through $ref from the
// ones in from, and the ones in also (from themselves are included only when
// something refers to them).
func reachable(defs map[string]schema, from []string, also ...string) []string {
	seen := map[string]bool{}
	for _, n := range also {
		seen[n] = true
	}
	var walk func(any)
	walk = func(n any) {
		switch v := n.(type) {
		case schema:
			if ref, ok := v["$ref"].(string); ok && strings.HasPrefix(ref, defsPrefix) {
				name := strings.TrimPrefix(ref, defsPrefix)
				if !seen[name] {
					seen[name] = true
					walk(defs[name])
				}
			}
			for k, c := range v {
				if k != "$ref" {
					walk(c)
				}
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	for _, n := range from {
		walk(defs[n])
	}
	return slices.Sorted(maps.Keys(seen))
}

// convert returns the strict, nullable-where-optional form of one schema
// node. It walks the schema keywords that hold schemas (properties, items,
// additionalProperties, allOf/anyOf/oneOf, not) and drops documentation and
// Kubernetes extension keywords, which validation ignores.
func convert(in schema, nullable bool) schema {
	if in["format"] == "int-or-string" || in["x-kubernetes-int-or-string"] == true {
		return orNull(schema{"oneOf": []any{schema{"type": "string"}, schema{"type": "integer"}}}, nullable)
	}
	if in["nullable"] == true {
		nullable = true
	}
	out := schema{}
	required := map[string]bool{}
	for _, r := range asStrings(in["required"]) {
		required[r] = true
	}
	for k, v := range in {
		switch {
		case k == "description" || k == "nullable" || k == "default" || k == "example" || strings.HasPrefix(k, "x-"):
			// Documentation, defaulting and extensions: no bearing on validity.
		case k == "properties":
			props := schema{}
			for name, p := range v.(schema) {
				props[name] = convert(p.(schema), !required[name])
			}
			out[k] = props
		case k == "items" || k == "not":
			if s, ok := v.(schema); ok {
				out[k] = convert(s, false)
			} else {
				out[k] = v
			}
		case k == "additionalProperties":
			if s, ok := v.(schema); ok {
				out[k] = convert(s, false)
			} else {
				out[k] = v
			}
		case k == "allOf" || k == "anyOf" || k == "oneOf":
			var list []any
			for _, s := range v.([]any) {
				list = append(list, convert(s.(schema), false))
			}
			out[k] = list
		default:
			out[k] = v
		}
	}
	// Strict: an object that lists its properties takes no others, unless
	// the schema says its content is free (x-kubernetes-preserve-unknown-fields).
	if _, ok := out["properties"]; ok && in["x-kubernetes-preserve-unknown-fields"] != true {
		if _, set := out["additionalProperties"]; !set {
			out["additionalProperties"] = false
		}
	}
	return orNull(out, nullable)
}

// orNull lets s also be null. A node with a type gets "null" added to it; a
// $ref is left as it is (every definition takes null); any other (a oneOf) is
// wrapped.
func orNull(s schema, nullable bool) schema {
	if !nullable {
		return s
	}
	if _, ok := s["$ref"]; ok {
		return s
	}
	switch t := s["type"].(type) {
	case string:
		s["type"] = []any{t, "null"}
		return s
	case []any:
		for _, x := range t {
			if x == "null" {
				return s
			}
		}
		s["type"] = append(append([]any{}, t...), "null")
		return s
	}
	return schema{"anyOf": []any{schema{"type": "null"}, s}}
}

// crdSchemas converts every version of every CustomResourceDefinition in the
// file, keyed by its path under crds/ ({{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json).
// metadata is checked against Kubernetes' ObjectMeta, which a CRD's schema
// leaves open.
func crdSchemas(defs map[string]schema, path string) (map[string]schema, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]schema{}
	dec := yaml.NewDecoder(f)
	for {
		var doc schema
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		if doc == nil || doc["kind"] != "CustomResourceDefinition" {
			continue
		}
		spec, _ := doc["spec"].(schema)
		names, _ := spec["names"].(schema)
		group, kind := str(spec["group"]), str(names["kind"])
		versions, _ := spec["versions"].([]any)
		for _, v := range versions {
			ver, _ := v.(schema)
			s, _ := ver["schema"].(schema)
			open, _ := s["openAPIV3Schema"].(schema)
			if open == nil || group == "" || kind == "" {
				return nil, fmt.Errorf("CRD %s/%s: a version without openAPIV3Schema", group, kind)
			}
			root := convert(open, false)
			g := gvk{group, str(ver["name"]), kind}
			pinTypeMeta(root, g)
			if props, ok := root["properties"].(schema); ok {
				props["metadata"] = schema{"$ref": defsPrefix + objectMeta}
			}
			doc, err := withDefinitions(root, defs, reachable(defs, []string{objectMeta}, objectMeta))
			if err != nil {
				return nil, err
			}
			out[filepath.Join(group, strings.ToLower(kind)+"_"+g.Version+".json")] = doc
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no CustomResourceDefinition with a schema")
	}
	return out, nil
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	raw, err := json.Marshal(v) // map keys sorted: the same input gives the same bytes
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}

func str(v any) string { s, _ := v.(string); return s }

// deepCopy copies a decoded JSON value, so that converting never changes
// the shared input (special, or a definition used by several kinds).
func deepCopy[T any](v T) T {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err) // decoded JSON always encodes
	}
	var out T
	if err := json.Unmarshal(raw, &out); err != nil {
		panic(err)
	}
	return out
}

func asStrings(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func sortedSet(m map[string]bool) []any {
	var out []any
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] {
			out = append(out, k)
		}
	}
	return out
}
