package uploader

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// maxDepth bounds the nesting of an answer; the API's answers are four
// levels deep at most.
const maxDepth = 32

// checkMembers refuses what encoding/json would quietly accept: a member
// name given twice in one object (the last one would win, so a proxy or an
// attacker could append "status":"PASS") and a member whose name matches a
// field of t only when case is ignored ("STATUS" would be read as
// "status"). t is the type the body is decoded into.
func checkMembers(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	return checkValue(dec, t, 0)
}

// checkValue reads one JSON value from dec, t being the Go type it goes
// into (nil when it is not decoded).
func checkValue(dec *json.Decoder, t reflect.Type, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		t = nil // its own form: only duplicates are checked inside
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := checkValue(dec, elem, depth+1); err != nil {
				return err
			}
		}
	case '{':
		fields := jsonFields(t)
		seen := map[string]string{} // lowercased name -> name as sent
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			name, _ := tok.(string)
			lower := strings.ToLower(name)
			if prev, dup := seen[lower]; dup {
				if prev == name {
					return fmt.Errorf("member %.64q appears twice", name)
				}
				return fmt.Errorf("members %.64q and %.64q differ only in case", prev, name)
			}
			seen[lower] = name
			var ft reflect.Type
			if t != nil && t.Kind() == reflect.Map {
				ft = t.Elem()
			}
			if f, ok := fields[lower]; ok {
				if f.name != name {
					return fmt.Errorf("member %.64q: the API document spells it %q", name, f.name)
				}
				ft = f.typ
			}
			if err := checkValue(dec, ft, depth+1); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields maps the lowercased JSON names of struct t's fields to their
// exact names and types; nil when t is not a struct.
func jsonFields(t reflect.Type) map[string]jsonField {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	out := make(map[string]jsonField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[strings.ToLower(name)] = jsonField{name: name, typ: f.Type}
	}
	return out
}
