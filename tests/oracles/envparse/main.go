// Command envparse reads an environment file the way Nomad reads a template with
// `env = true`: hashicorp/go-envparse's Parse, which loadTemplateEnv in Nomad's
// client/allocrunner/taskrunner/template/template.go calls on the rendered file
// (go-envparse v0.1.0 from Nomad 1.9; 310ca18 before, with the same value rules).
// It is a test oracle, built against Debian's golang-github-hashicorp-go-envparse-dev
// (v0.1.0) in GOPATH mode.
//
// Usage:
//
//	envparse < file > pairs.json
//
// Prints the variables as one JSON object; on a parse error prints go-envparse's
// message on stderr and exits 1, as Nomad then fails the task with that message.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	envparse "github.com/hashicorp/go-envparse"
)

func main() {
	env, err := envparse.Parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := json.Marshal(env)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Stdout.Write(out)
}
