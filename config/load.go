package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable that overrides a key.
const EnvPrefix = "FEEDMILL_"

var durationType = reflect.TypeFor[time.Duration]()

// presence records the key paths ("full_pass.interval") that the file or
// the environment set, so defaults fill only what is absent.
type presence map[string]bool

// setDefault stores v in dst unless path was set explicitly.
func setDefault[T any](p presence, path string, dst *T, v T) {
	if !p[path] {
		*dst = v
	}
}

// decode fills dst, a pointer to a struct with yaml tags, from the YAML
// document in data and then from the FEEDMILL_ variables in environ. It
// returns the key paths that were set. Problems with keys or values are
// returned together as a *ValidationError.
func decode(data []byte, environ []string, dst any) (presence, error) {
	rv := reflect.ValueOf(dst).Elem()
	present := presence{}

	var doc yaml.Node
	docs := yaml.NewDecoder(bytes.NewReader(data))
	if err := docs.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	var extra yaml.Node
	if err := docs.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("parse yaml: %w", err)
		}
		return nil, &ValidationError{Problems: []Problem{{
			Path:    "(root)",
			Message: fmt.Sprintf("a second YAML document starts at line %d; the config must be one document", extra.Line),
		}}}
	}
	if len(doc.Content) > 0 && !isNull(doc.Content[0]) {
		root := doc.Content[0]
		w := walker{present: present}
		w.walk(root, rv.Type(), "")
		if len(w.problems) > 0 {
			return nil, &ValidationError{Problems: w.problems}
		}
		// The walker has checked every key and value and rewritten
		// durations into the canonical form yaml/v3 decodes; the strict
		// decode below moves the values into dst.
		normalized, err := yaml.Marshal(root)
		if err != nil {
			return nil, fmt.Errorf("re-encode yaml: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(normalized))
		dec.KnownFields(true)
		if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("decode yaml: %w", err)
		}
	}

	if problems := applyEnv(environ, rv, present); len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	return present, nil
}

// walker checks a YAML node tree against a Go type: unknown keys, value
// types and durations, each reported with key path and line. It records
// the paths it sees and rewrites duration scalars to canonical strings.
type walker struct {
	present  presence
	problems []Problem
}

func (w *walker) fail(path string, n *yaml.Node, format string, args ...any) {
	if path == "" {
		path = "(root)"
	}
	w.problems = append(w.problems, Problem{
		Path:    path,
		Message: fmt.Sprintf(format, args...) + fmt.Sprintf(" (line %d)", n.Line),
	})
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) {
		return // null counts as absent: defaults apply
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			w.fail(path, n, "want a duration such as 90s or 1h, got %s", kindName(n))
			return
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			w.fail(path, n, "invalid duration %q: want a Go duration such as 90s, 1h or 0", n.Value)
			return
		}
		n.Tag, n.Value, n.Style = "!!str", d.String(), 0
		w.present[path] = true

	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		w.walk(n, t.Elem(), path) // an optional section (feeds[].group)

	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(path, n, "want a mapping, got %s", kindName(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := joinPath(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				w.fail(key, k, "unknown key")
				continue
			}
			w.walk(v, f.Type, key)
		}
		w.present[path] = true

	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(path, n, "want a list, got %s", kindName(n))
			return
		}
		for i, item := range n.Content {
			w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
		w.present[path] = true

	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(path, n, "want %s, got %s", typeName(t), kindName(n))
			return
		}
		// Decode into a scratch value so the check matches exactly what
		// the real decode will accept.
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.fail(path, n, "cannot use %q as %s", n.Value, typeName(t))
			return
		}
		w.present[path] = true
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	default:
		return "an unexpected node"
	}
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "a boolean"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "an integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice:
		return "a list"
	default:
		return t.String()
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the yaml key of every tagged field of struct type t to
// the field.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fields[name] = f
	}
	return fields
}

// envKey is one key that an environment variable can override.
type envKey struct {
	path  string // yaml key path, e.g. kafka.topics.offers
	index []int  // field index path from the root struct
	typ   reflect.Type
	// listOfStructs marks keys (feeds, templates) that exist but cannot
	// be set from the environment.
	listOfStructs bool
}

// envName returns the variable that overrides the key at path.
func envName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// envKeys lists the overridable keys of struct type t by variable name.
func envKeys(t reflect.Type) map[string]envKey {
	keys := map[string]envKey{}
	var walk func(t reflect.Type, path string, index []int)
	walk = func(t reflect.Type, path string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			p := joinPath(path, name)
			idx := append(append([]int(nil), index...), i)
			ft := f.Type
			switch {
			case ft != durationType && ft.Kind() == reflect.Struct:
				walk(ft, p, idx)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				keys[envName(p)] = envKey{path: p, index: idx, typ: ft, listOfStructs: true}
			default:
				keys[envName(p)] = envKey{path: p, index: idx, typ: ft}
			}
		}
	}
	walk(t, "", nil)
	return keys
}

// applyEnv sets the keys of root named by FEEDMILL_ variables in environ
// (entries "NAME=value", later entries win) and marks them present.
func applyEnv(environ []string, root reflect.Value, present presence) []Problem {
	keys := envKeys(root.Type())
	var problems []Problem
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		key, ok := keys[name]
		switch {
		case !ok:
			problems = append(problems, Problem{Path: name, Message: "unknown variable: matches no config key"})
			continue
		case key.listOfStructs:
			problems = append(problems, Problem{Path: name, Message: key.path + " cannot be set from the environment; set it in the config file"})
			continue
		}
		if err := setFromString(root.FieldByIndex(key.index), value); err != nil {
			problems = append(problems, Problem{Path: name, Message: fmt.Sprintf("%s for %s", err, key.path)})
			continue
		}
		present[key.path] = true
	}
	return problems
}

// setFromString parses s into v, whose kind is one the config types use.
func setFromString(v reflect.Value, s string) error {
	t := v.Type()
	switch {
	case t == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid duration %q: want a Go duration such as 90s, 1h or 0", s)
		}
		v.SetInt(int64(d))
	case t.Kind() == reflect.String:
		v.SetString(s)
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("cannot use %q as a boolean", s)
		}
		v.SetBool(b)
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return fmt.Errorf("cannot use %q as an integer", s)
		}
		v.SetInt(i)
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), t.Bits())
		if err != nil {
			return fmt.Errorf("cannot use %q as a number", s)
		}
		v.SetFloat(f)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		list := []string{}
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		v.Set(reflect.ValueOf(list).Convert(t))
	default:
		return fmt.Errorf("type %s cannot be set from the environment", t)
	}
	return nil
}
