package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// A small OpenAPI v2 document in Kubernetes' shape: one kind (Widget), the
// ObjectMeta it refers to, the two special types, and a definition nothing
// refers to.
const swaggerDoc = `{"definitions": {
  "io.k8s.api.demo.v1.Widget": {
    "description": "A widget.",
    "type": "object",
    "required": ["spec"],
    "properties": {
      "apiVersion": {"type": "string"},
      "kind": {"type": "string"},
      "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
      "spec": {"$ref": "#/definitions/io.k8s.api.demo.v1.WidgetSpec"}
    },
    "x-kubernetes-group-version-kind": [{"group": "demo.example.com", "kind": "Widget", "version": "v1"}]
  },
  "io.k8s.api.demo.v1.WidgetSpec": {
    "type": "object",
    "required": ["size"],
    "properties": {
      "size": {"type": "integer", "format": "int32"},
      "port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
      "memory": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
      "description": {"type": "string", "description": "a field named like the keyword"},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}}
    }
  },
  "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
    "type": "object",
    "properties": {"name": {"type": "string"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}}}
  },
  "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
  "io.k8s.api.demo.v1.Unused": {"type": "object", "properties": {"x": {"type": "string"}}}
}}`

const crdDoc = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.demo.example.com
spec:
  group: demo.example.com
  names: {kind: Gadget, plural: gadgets}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              required: [mode]
              properties:
                mode: {type: string, enum: [a, b], default: a}
                port: {x-kubernetes-int-or-string: true, anyOf: [{type: integer}, {type: string}]}
                free: {type: object, x-kubernetes-preserve-unknown-fields: true, properties: {known: {type: string}}}
`

func generate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sw := filepath.Join(dir, "swagger.json")
	crd := filepath.Join(dir, "gadget.yaml")
	if err := os.WriteFile(sw, []byte(swaggerDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crd, []byte(crdDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	n, err := run(sw, "1.2.3", out, []string{crd})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d schemas written, want 2 (Widget, Gadget)", n)
	}
	return out
}

func readSchema(t *testing.T, path string) schema {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s schema
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func at(s schema, keys ...string) any {
	var v any = s
	for _, k := range keys {
		v = v.(schema)[k]
	}
	return v
}

func TestKindSchema(t *testing.T) {
	out := generate(t)
	if raw, _ := os.ReadFile(filepath.Join(out, "kubernetes-version")); string(raw) != "1.2.3\n" {
		t.Errorf("kubernetes-version %q", raw)
	}
	// kubeconform's file name: kind, the group's first label, the version.
	s := readSchema(t, filepath.Join(out, "v1.2.3-standalone-strict", "widget-demo-v1.json"))

	if got := at(s, "properties", "apiVersion", "enum"); !reflect.DeepEqual(got, []any{"demo.example.com/v1"}) {
		t.Errorf("apiVersion enum %v", got)
	}
	if got := at(s, "properties", "kind", "enum"); !reflect.DeepEqual(got, []any{"Widget"}) {
		t.Errorf("kind enum %v", got)
	}
	if got := at(s, "required"); !reflect.DeepEqual(got, []any{"apiVersion", "kind", "spec"}) {
		t.Errorf("required %v", got)
	}
	if s["additionalProperties"] != false || s["type"] != "object" || s["description"] != nil {
		t.Errorf("root: strict %v, type %v (not nullable), description %v (dropped)", s["additionalProperties"], s["type"], s["description"])
	}

	defs := s["definitions"].(schema)
	names := slices.Sorted(maps.Keys(defs))
	// Reachable from Widget, sorted; Unused is left out.
	want := strings.Fields(`io.k8s.api.demo.v1.WidgetSpec io.k8s.apimachinery.pkg.api.resource.Quantity
		io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta io.k8s.apimachinery.pkg.util.intstr.IntOrString`)
	if !slices.Equal(names, want) {
		t.Errorf("definitions %v, want the reachable ones %v", names, want)
	}

	spec := defs["io.k8s.api.demo.v1.WidgetSpec"].(schema)
	if spec["additionalProperties"] != false {
		t.Error("WidgetSpec is not strict")
	}
	if got := at(spec, "properties", "size", "type"); got != "integer" {
		t.Errorf("required size: type %v, want integer (not nullable)", got)
	}
	if got := at(spec, "properties", "description", "type"); !reflect.DeepEqual(got, []any{"string", "null"}) {
		t.Errorf("optional field named description: type %v", got)
	}
	if got := at(spec, "properties", "port"); !reflect.DeepEqual(got, schema{"$ref": defsPrefix + "io.k8s.apimachinery.pkg.util.intstr.IntOrString"}) {
		t.Errorf("an optional $ref is left alone: %v", got)
	}
	if got := at(spec, "properties", "labels", "additionalProperties"); !reflect.DeepEqual(got, schema{"type": "string"}) {
		t.Errorf("map values: %v", got)
	}
	ios := defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"].(schema)
	if !reflect.DeepEqual(ios, schema{"anyOf": []any{schema{"type": "null"}, schema{"oneOf": []any{schema{"type": "string"}, schema{"type": "integer"}}}}}) {
		t.Errorf("IntOrString %v", ios)
	}
	q := defs["io.k8s.apimachinery.pkg.api.resource.Quantity"].(schema)
	if !reflect.DeepEqual(q, schema{"anyOf": []any{schema{"type": "null"}, schema{"oneOf": []any{schema{"type": "string"}, schema{"type": "number"}}}}}) {
		t.Errorf("Quantity %v", q)
	}
}

func TestCRDSchema(t *testing.T) {
	out := generate(t)
	s := readSchema(t, filepath.Join(out, "crds", "demo.example.com", "gadget_v1alpha1.json"))
	if got := at(s, "properties", "apiVersion", "enum"); !reflect.DeepEqual(got, []any{"demo.example.com/v1alpha1"}) {
		t.Errorf("apiVersion enum %v", got)
	}
	if got := at(s, "properties", "metadata"); !reflect.DeepEqual(got, schema{"$ref": defsPrefix + objectMeta}) {
		t.Errorf("metadata %v, want Kubernetes' ObjectMeta", got)
	}
	if _, ok := s["definitions"].(schema)[objectMeta]; !ok {
		t.Error("ObjectMeta not among the definitions")
	}
	spec := at(s, "properties", "spec").(schema)
	if spec["additionalProperties"] != false {
		t.Error("spec is not strict")
	}
	mode := at(spec, "properties", "mode").(schema)
	if _, ok := mode["default"]; ok || mode["type"] != "string" {
		t.Errorf("mode %v: want type string (required) and no default", mode)
	}
	if got := at(spec, "properties", "port"); !reflect.DeepEqual(got, schema{"anyOf": []any{schema{"type": "null"}, schema{"oneOf": []any{schema{"type": "string"}, schema{"type": "integer"}}}}}) {
		t.Errorf("int-or-string port %v", got)
	}
	if _, ok := at(spec, "properties", "free").(schema)["additionalProperties"]; ok {
		t.Error("x-kubernetes-preserve-unknown-fields object made strict")
	}
}
