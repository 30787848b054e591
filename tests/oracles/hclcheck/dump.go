package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// dumpBody is a job file as HashiCorp's parser reads it: every attribute
// evaluated with NO evaluation context, so any live `${...}` or `%{...}` left in
// the text is an error here instead of a silently interpolated value. That is
// what proves the renderer's escaping: Nomad would interpolate what we leave live.
type dumpBody struct {
	Attrs  map[string]json.RawMessage `json:"attrs"`
	Blocks []dumpBlock                `json:"blocks"`
}

type dumpBlock struct {
	Type   string   `json:"type"`
	Labels []string `json:"labels"`
	Body   dumpBody `json:"body"`
}

func dump(name string, out io.Writer) bool {
	src, err := os.ReadFile(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return false
	}
	file, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		fmt.Fprintln(os.Stderr, diags.Error())
		return false
	}
	body, ok := dumpOf(file.Body.(*hclsyntax.Body))
	if !ok {
		return false
	}
	encoded, err := json.Marshal(body)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return false
	}
	out.Write(encoded)
	return true
}

func dumpOf(body *hclsyntax.Body) (dumpBody, bool) {
	result := dumpBody{Attrs: map[string]json.RawMessage{}, Blocks: []dumpBlock{}}
	ok := true
	names := make([]string, 0, len(body.Attributes))
	for n := range body.Attributes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		attr := body.Attributes[n]
		value, diags := attr.Expr.Value(nil)
		if diags.HasErrors() {
			fmt.Fprintln(os.Stderr, diags.Error())
			ok = false
			continue
		}
		encoded, err := json.Marshal(ctyjson.SimpleJSONValue{Value: value})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			ok = false
			continue
		}
		result.Attrs[n] = encoded
	}
	for _, block := range body.Blocks {
		inner, innerOK := dumpOf(block.Body)
		ok = ok && innerOK
		labels := block.Labels
		if labels == nil {
			labels = []string{}
		}
		result.Blocks = append(result.Blocks, dumpBlock{Type: block.Type, Labels: labels, Body: inner})
	}
	return result, ok
}
