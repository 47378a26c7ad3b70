package batch

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/respjson"
)

// The official Go SDK's types are the reference for the wire shapes: each
// object is decoded into the SDK's type, which records, field by field,
// whether the key was there and had the right type, and which keys it did
// not know.

// sdkShape fails t unless v, marshalled, decodes into the SDK type of sdk
// with every key the SDK knows present (but the fields named in absent) and
// well typed, and no key the SDK does not know (but the keys "+key" in
// absent); nested objects are checked too.
func sdkShape(t *testing.T, what string, v any, sdk any, absent ...string) {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, sdk); err != nil {
		t.Fatalf("%s does not decode into %T: %v\n%s", what, sdk, err, js)
	}
	checkFields(t, what, reflect.ValueOf(sdk).Elem(), absent)
}

func checkFields(t *testing.T, path string, v reflect.Value, absent []string) {
	t.Helper()
	meta := v.FieldByName("JSON")
	if !meta.IsValid() {
		return
	}
	for i := 0; i < meta.NumField(); i++ {
		sf := meta.Type().Field(i)
		if !sf.IsExported() || slices.Contains(absent, sf.Name) {
			continue
		}
		if sf.Name == "ExtraFields" {
			var unknown []string
			for k := range meta.Field(i).Interface().(map[string]respjson.Field) {
				if !slices.Contains(absent, "+"+k) {
					unknown = append(unknown, k)
				}
			}
			if len(unknown) > 0 {
				slices.Sort(unknown)
				t.Errorf("%s: keys the SDK does not know: %v", path, unknown)
			}
			continue
		}
		f := meta.Field(i).Interface().(respjson.Field)
		switch {
		case f.Raw() == respjson.Omitted:
			t.Errorf("%s.%s: missing", path, sf.Name)
		case !f.Valid() && f.Raw() != respjson.Null:
			t.Errorf("%s.%s: wrong type: %s", path, sf.Name, f.Raw())
		case f.Valid():
			checkValue(t, path+"."+sf.Name, v.FieldByName(sf.Name), absent)
		}
	}
}

// checkValue checks nested objects; absent names fields at any depth.
func checkValue(t *testing.T, path string, v reflect.Value, absent []string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		checkFields(t, path, v, absent)
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			checkValue(t, path, v.Index(i), absent)
		}
	}
}

// Batch fields the SDK knows that this server does not report.
var batchAbsent = []string{"Model", "Usage"}

func checkBatchShape(t *testing.T, b *Batch) {
	t.Helper()
	var sdk openai.Batch
	sdkShape(t, "batch "+b.ID, b, &sdk, batchAbsent...)
	if sdk.ID != b.ID || string(sdk.Status) != string(b.Status) || sdk.RequestCounts.Total != int64(b.RequestCounts.Total) {
		t.Errorf("the SDK read batch %s as %s/%s/%d", b.ID, sdk.ID, sdk.Status, sdk.RequestCounts.Total)
	}
}

func checkFileShape(t *testing.T, f *File) {
	t.Helper()
	var sdk openai.FileObject
	sdkShape(t, "file "+f.ID, f, &sdk)
	if sdk.ID != f.ID || sdk.Bytes != f.Bytes || string(sdk.Purpose) != f.Purpose {
		t.Errorf("the SDK read file %s as %s/%d/%s", f.ID, sdk.ID, sdk.Bytes, sdk.Purpose)
	}
}
