// Command schemas writes the JSON schemas kubeconform validates tiergate's Kubernetes
// manifests against, without a network: one schema per built-in kind, derived by
// reflection from the Go types of k8s.io/api at the version go.mod pins (the types
// the API server itself decodes into). Every object is closed (additionalProperties:
// false), so an unknown or misspelt field fails; scalar types, int-or-string,
// quantities, apiVersion and kind are checked as the API server reads them.
//
// Usage: go run ./schemas <out-dir>
// Writes <out-dir>/<kind>-<group>-<version>.json (core kinds: <kind>-<version>.json),
// the layout of kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` template.
package main

import (
	"encoding"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type schema = map[string]any

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// Types whose JSON form is not their Go structure.
var special = map[reflect.Type]schema{
	reflect.TypeFor[intstr.IntOrString](): {"type": []string{"integer", "string"}},
	// The quantity grammar of k8s.io/apimachinery/pkg/api/resource (a number, or a
	// number with a decimal or binary suffix or an exponent).
	reflect.TypeFor[resource.Quantity](): {
		"anyOf": []schema{
			{"type": "number"},
			{"type": "string", "pattern": `^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$`},
		},
	},
	reflect.TypeFor[metav1.Time]():          {"type": []string{"string", "null"}, "format": "date-time"},
	reflect.TypeFor[metav1.MicroTime]():     {"type": []string{"string", "null"}, "format": "date-time"},
	reflect.TypeFor[metav1.Duration]():      {"type": "string"},
	reflect.TypeFor[runtime.RawExtension](): {"type": "object"},
}

type generator struct {
	defs map[string]schema
}

func defName(t reflect.Type) string {
	return strings.NewReplacer("/", ".", "k8s.io.", "io.k8s.").Replace(t.PkgPath()) + "." + t.Name()
}

// of returns the schema of a field of type t, referring to named structs by $ref.
func (g *generator) of(t reflect.Type) schema {
	if s, ok := special[t]; ok {
		return s
	}
	if t.Kind() == reflect.Pointer {
		return g.of(t.Elem())
	}
	// A type with its own JSON form that is not listed above: accept any value
	// rather than guess (none of the kinds tiergate ships reaches this).
	if t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler) ||
		(t.Kind() == reflect.Struct && (t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler))) {
		return schema{}
	}
	switch t.Kind() {
	case reflect.Bool:
		return schema{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return schema{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return schema{"type": "number"}
	case reflect.String:
		return schema{"type": "string"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return schema{"type": "string", "contentEncoding": "base64"}
		}
		return schema{"type": "array", "items": g.of(t.Elem())}
	case reflect.Map:
		return schema{"type": "object", "additionalProperties": g.of(t.Elem())}
	case reflect.Interface:
		return schema{}
	case reflect.Struct:
		name := defName(t)
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = nil // placeholder: recursive types refer to themselves
			g.defs[name] = g.object(t)
		}
		return schema{"$ref": "#/definitions/" + name}
	default:
		panic(fmt.Sprintf("no JSON schema for %s (%s)", t, t.Kind()))
	}
}

// object is the closed object schema of struct t, inline (embedded) fields merged.
func (g *generator) object(t reflect.Type) schema {
	props := schema{}
	g.fields(t, props)
	return schema{"type": "object", "properties": props, "additionalProperties": false}
}

func (g *generator) fields(t reflect.Type, props schema) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			g.fields(ft, props)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.of(f.Type)
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: schemas <out-dir>")
		os.Exit(2)
	}
	out := os.Args[1]
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, autoscalingv2.AddToScheme, batchv1.AddToScheme, corev1.AddToScheme,
		networkingv1.AddToScheme, policyv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	written := 0
	for gvk, t := range scheme.AllKnownTypes() {
		// Only the API resources: not the List, Options and Event wrappers every group registers.
		if gvk.Version == runtime.APIVersionInternal || strings.HasSuffix(gvk.Kind, "List") ||
			strings.HasSuffix(gvk.Kind, "Options") || gvk.Kind == "WatchEvent" || gvk.Kind == "Status" {
			continue
		}
		g := &generator{defs: map[string]schema{}}
		root := g.object(t)
		props := root["properties"].(schema)
		props["apiVersion"] = schema{"type": "string", "enum": []string{gvk.GroupVersion().String()}}
		props["kind"] = schema{"type": "string", "enum": []string{gvk.Kind}}
		root["required"] = []string{"apiVersion", "kind"}
		root["definitions"] = g.defs
		root["$schema"] = "http://json-schema.org/draft-07/schema#"
		suffix := "-" + strings.ToLower(gvk.Version)
		if gvk.Group != "" {
			suffix = "-" + strings.ToLower(strings.Split(gvk.Group, ".")[0]) + suffix
		}
		file := filepath.Join(out, strings.ToLower(gvk.Kind)+suffix+".json")
		data, err := json.MarshalIndent(root, "", " ")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.WriteFile(file, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		written++
	}
	fmt.Printf("wrote %d schemas to %s\n", written, out)
}
