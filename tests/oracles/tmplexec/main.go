// Command tmplexec renders a Nomad `template` block's data the way Nomad's
// embedded consul-template does, with the data sources stubbed from a JSON
// file. It is a test oracle: if a template renders here, the real runner
// gets the same bytes once the variables and secrets exist.
//
// Usage:
//
//	tmplexec SECRETS_JSON_FILE < template > output
//
// SECRETS_JSON_FILE holds the stub data:
//
//	{"nomad": {"nomad/jobs/x": {"key": "value"}},
//	 "vault": {"kv/data/x": {"key": "value"}}}
//
// The functions and the types they return follow hashicorp/consul-template
// (template/funcs.go, dependency/nomad_var_structs.go,
// dependency/vault_common.go), so that a template reaching for the wrong
// field (`.key` instead of `.key.Value`, `.Data.key` instead of
// `.Data.data.key` for KV v2) fails here as it would in Nomad.
//
// Uses only the standard library, so it builds with plain `go build`.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/template"
)

// NomadVarItem mirrors consul-template's dependency.NomadVarItem. A template
// gets the string with `.key.Value`; printing the item itself goes through
// String(), which text/template uses via fmt.
type NomadVarItem struct {
	Key, Value string
}

func (v NomadVarItem) String() string { return v.Value }

// NomadVarItems mirrors dependency.NomadVarItems, what `nomadVar` returns.
type NomadVarItems map[string]NomadVarItem

// Secret mirrors the fields of consul-template's dependency.Secret (a Vault
// API response) that templates read. For a KV v2 mount the key/value pairs
// sit under Data["data"], next to Data["metadata"].
type Secret struct {
	RequestID     string
	LeaseID       string
	LeaseDuration int
	Renewable     bool
	Data          map[string]interface{}
	Warnings      []string
}

// stubs is the decoded SECRETS_JSON_FILE.
type stubs struct {
	Nomad map[string]map[string]string `json:"nomad"`
	Vault map[string]map[string]string `json:"vault"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tmplexec SECRETS_JSON_FILE < template > output")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(stubPath string, in io.Reader, out io.Writer) error {
	raw, err := os.ReadFile(stubPath)
	if err != nil {
		return err
	}
	var data stubs
	dec := json.NewDecoder(bytes.NewReader(raw))
	// A typo in the stub file ("vualt") would otherwise just look like a
	// missing secret; reject it outright.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&data); err != nil {
		return fmt.Errorf("%s: %v", stubPath, err)
	}
	src, err := io.ReadAll(in)
	if err != nil {
		return err
	}

	// Same construction as consul-template's Template.Execute: default
	// delimiters, its function map, and missingkey=error, which is what a
	// template block with error_on_missing_key = true gets. That setting is
	// opt-in (Nomad defaults to false and would render "<no value>"), so the
	// rendered jobs must set it for this oracle to speak for them.
	tmpl, err := template.New("template").
		Funcs(funcMap(data)).
		Option("missingkey=error").
		Parse(string(src))
	if err != nil {
		return err // already reads "template: NAME:LINE:COL: ..."
	}
	// Render into memory first so that a failing template writes nothing:
	// Nomad never writes a half-rendered file either.
	var buf strings.Builder
	if err := tmpl.Execute(&buf, nil); err != nil {
		return err // already reads "template: NAME:LINE:COL: ..."
	}
	_, err = io.WriteString(out, buf.String())
	return err
}

func funcMap(data stubs) template.FuncMap {
	return template.FuncMap{
		// consul-template returns a pointer; text/template dereferences it
		// for `.key`, so templates cannot tell, but keep the real type.
		"nomadVar": func(path string) (*NomadVarItems, error) {
			vars, ok := data.Nomad[path]
			if !ok {
				// The real function returns nil and the runner blocks until
				// the variable exists, i.e. forever in a test.
				return nil, fmt.Errorf("nomadVar %q: no such variable in the stubs", path)
			}
			items := make(NomadVarItems, len(vars))
			for k, v := range vars {
				items[k] = NomadVarItem{Key: k, Value: v}
			}
			return &items, nil
		},
		// Only the read form: consul-template's `secret PATH k=v...` writes,
		// which a rendered job must never do.
		"secret": func(path string) (*Secret, error) {
			kv, ok := data.Vault[path]
			if !ok {
				return nil, fmt.Errorf("secret %q: no such secret in the stubs", path)
			}
			inner := make(map[string]interface{}, len(kv))
			for k, v := range kv {
				inner[k] = v
			}
			return &Secret{
				Data: map[string]interface{}{
					"data": inner,
					"metadata": map[string]interface{}{
						"created_time":  "2024-01-01T00:00:00Z",
						"deletion_time": "",
						"destroyed":     false,
						"version":       1,
					},
				},
			}, nil
		},
		// consul-template's argument order: the piped string comes last.
		"replaceAll": func(old, new, s string) (string, error) {
			return strings.Replace(s, old, new, -1), nil
		},
		"env": func(name string) (string, error) {
			return os.Getenv(name), nil
		},
	}
}
