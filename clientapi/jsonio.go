package clientapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/privateline/privateline"
)

// maxJSONDepth bounds nesting in request bodies.
const maxJSONDepth = 32

// decodeJSON strictly decodes a request body into dst: Content-Type must be
// JSON, the body valid UTF-8, one object with no unknown or duplicate
// fields, no trailing data. An empty body is accepted only when allowEmpty.
func decodeJSON(r *http.Request, dst any, allowEmpty bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return privateline.E("clientapi.decodeJSON", privateline.TooLarge, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit))
		}
		return invalid("could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return invalid("request body is empty; a JSON object is required")
	}
	{
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return errUnsupportedMediaType
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return errUnsupportedMediaType
		}
	}
	if !utf8.Valid(body) {
		return invalid("request body is not valid UTF-8")
	}
	if err := checkJSONShape(body); err != nil {
		return err
	}
	if err := checkFieldNames(body, reflect.TypeOf(dst)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return invalid(describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("unexpected data after the JSON object")
	}
	return nil
}

func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q must be %s", te.Field, jsonTypeName(te.Type.Kind().String()))
		}
		return "the body must be a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON"
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int64", "int32", "uint64", "float64":
		return "a number"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "of another type"
}

type jsonFrame struct {
	obj  bool
	keys map[string]bool
	key  bool // the next token in an object is a key
}

// checkJSONShape rejects a body that is not a JSON object, has duplicate
// keys in any object, or nests deeper than maxJSONDepth.
func checkJSONShape(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []jsonFrame
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return invalid(describeJSONError(err))
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return invalid("the body must be a JSON object")
			}
			first = false
		}
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
				markValueDone(stack)
				continue
			}
			k := tok.(string)
			if stack[n-1].keys[k] {
				return invalid(fmt.Sprintf("duplicate field %q", k))
			}
			stack[n-1].keys[k] = true
			stack[n-1].key = false
			continue
		}
		switch d, _ := tok.(json.Delim); d {
		case '{', '[':
			if len(stack) >= maxJSONDepth {
				return invalid(fmt.Sprintf("JSON nested deeper than %d", maxJSONDepth))
			}
			stack = append(stack, jsonFrame{obj: d == '{', keys: map[string]bool{}, key: d == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
			markValueDone(stack)
		default:
			markValueDone(stack)
		}
	}
}

// markValueDone records that a value ended; in an object a key comes next.
func markValueDone(stack []jsonFrame) {
	if n := len(stack); n > 0 && stack[n-1].obj {
		stack[n-1].key = true
	}
}

// checkFieldNames refuses object keys that are not exactly a field's JSON
// name. encoding/json matches names case-insensitively (and folds "ſ" to
// "s", "K" to "k"), so without this "USERNAME" or a second "Username"
// would slip past the duplicate check and DisallowUnknownFields. Nested
// structs are checked too; json.RawMessage fields hold free-form JSON.
func checkFieldNames(body []byte, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == rawMessageType {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return nil // not an object here; the decoder reports the type error
	}
	for k, v := range obj {
		f, ok := fieldByJSONName(t, k)
		if !ok {
			return invalid(fmt.Sprintf("unknown field %q", k))
		}
		// encoding/json treats null as "absent"; the API has no nullable
		// fields, so null is refused rather than silently ignored.
		if string(bytes.TrimSpace(v)) == "null" {
			return invalid(fmt.Sprintf("field %q must not be null", k))
		}
		if err := checkFieldNames(v, f.Type); err != nil {
			return err
		}
	}
	return nil
}

var rawMessageType = reflect.TypeOf(json.RawMessage(nil))

// fieldByJSONName finds the field whose JSON name is exactly name, looking
// into embedded structs as encoding/json does.
func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			if g, ok := fieldByJSONName(f.Type, name); ok {
				return g, true
			}
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if f.IsExported() && tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// b64 is the encoding of binary fields on the wire: standard base64 with
// padding.
var b64 = base64.StdEncoding.Strict()

// decodeB64 decodes a base64 field and checks its length.
func decodeB64(field, s string, minLen, maxLen int) ([]byte, error) {
	if s == "" {
		return nil, invalid(fmt.Sprintf("field %q is required", field))
	}
	if len(s) > b64.EncodedLen(maxLen) {
		return nil, invalid(fmt.Sprintf("field %q is longer than %d bytes", field, maxLen))
	}
	b, err := b64.DecodeString(s)
	// The decoder skips CR and LF even in strict mode; the wire form has none.
	if err != nil || strings.ContainsAny(s, "\r\n") {
		return nil, invalid(fmt.Sprintf("field %q must be standard base64", field))
	}
	if len(b) < minLen || len(b) > maxLen {
		if minLen == maxLen {
			return nil, invalid(fmt.Sprintf("field %q must decode to %d bytes", field, minLen))
		}
		return nil, invalid(fmt.Sprintf("field %q must decode to %d to %d bytes", field, minLen, maxLen))
	}
	return b, nil
}
