// Command hclcheck is a test oracle for the HCL that matomo-nomad renders.
//
// It uses the very packages Nomad uses: jobspec2 parses job files with
// hclsyntax, and `nomad fmt` is nothing more than hclwrite.Format on the
// file's bytes. A file that passes `hclcheck check` therefore parses in
// Nomad and is left untouched by `nomad fmt`.
//
// Usage:
//
//	hclcheck check FILE...   exit 1 on a parse error or non-canonical layout
//	hclcheck fmt FILE        print the canonical form of FILE to stdout
//	hclcheck dump FILE       print the file's blocks and evaluated attributes as JSON
//
// Build without modules, against Debian's golang-github-hashicorp-hcl-v2-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// maxDiffLines bounds the diff report: the first few differences are enough
// to see what the renderer got wrong, and a cascade of them is just noise.
const maxDiffLines = 8

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	switch os.Args[1] {
	case "check":
		ok := true
		for _, name := range os.Args[2:] {
			if !check(name, os.Stderr) {
				ok = false
			}
		}
		if !ok {
			os.Exit(1)
		}
	case "fmt":
		if len(os.Args) != 3 {
			usage()
		}
		src, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		// hclwrite.Format does not validate (it formats token by token), so
		// parse first: formatting a broken file would hide the real problem.
		if !parseOK(os.Args[2], src, os.Stderr) {
			os.Exit(1)
		}
		os.Stdout.Write(hclwrite.Format(src))
	case "dump":
		if len(os.Args) != 3 || !dump(os.Args[2], os.Stdout) {
			os.Exit(1)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: hclcheck check FILE... | hclcheck fmt FILE | hclcheck dump FILE")
	os.Exit(2)
}

// check reports every problem with one file on w and says whether it is clean.
func check(name string, w io.Writer) bool {
	src, err := os.ReadFile(name)
	if err != nil {
		fmt.Fprintln(w, err)
		return false
	}
	if !parseOK(name, src, w) {
		return false
	}
	formatted := hclwrite.Format(src)
	if bytes.Equal(formatted, src) {
		return true
	}
	fmt.Fprintf(w, "%s: not in canonical format\n", name)
	writeDiff(w, string(src), string(formatted))
	return false
}

// parseOK parses src the way Nomad's jobspec2 does (native HCL syntax) and
// prints each diagnostic, errors and warnings alike, as FILE:LINE:COL.
func parseOK(name string, src []byte, w io.Writer) bool {
	_, diags := hclsyntax.ParseConfig(src, name, hcl.Pos{Line: 1, Column: 1, Byte: 0})
	for _, d := range diags {
		var pos hcl.Pos
		if d.Subject != nil {
			pos = d.Subject.Start
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += "; " + d.Detail
		}
		fmt.Fprintf(w, "%s:%d:%d: %s\n", name, pos.Line, pos.Column, msg)
	}
	// Warnings fail too: generated files have no excuse for any diagnostic.
	return len(diags) == 0
}

// writeDiff prints the first differing lines of got and want side by side.
// It compares line by line without realigning: hclwrite.Format only changes
// spacing within lines and never adds, drops or joins lines, so line numbers
// of the input and the canonical output stay in step.
func writeDiff(w io.Writer, got, want string) {
	gotLines := strings.Split(got, "\n")
	wantLines := strings.Split(want, "\n")
	n := len(gotLines)
	if len(wantLines) > n {
		n = len(wantLines)
	}
	shown := 0
	for i := 0; i < n && shown < maxDiffLines; i++ {
		g, wnt := lineAt(gotLines, i), lineAt(wantLines, i)
		if g == wnt {
			continue
		}
		fmt.Fprintf(w, "  line %d:\n    have: %s\n    want: %s\n", i+1, g, wnt)
		shown++
	}
	if shown == maxDiffLines {
		fmt.Fprintln(w, "  ...")
	}
}

// lineAt quotes line i so that trailing spaces and tabs are visible, and
// marks lines that only one side has.
func lineAt(lines []string, i int) string {
	if i >= len(lines) {
		return "<no line>"
	}
	return fmt.Sprintf("%q", lines[i])
}
