package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

const usage = `argocd-lua: run Argo CD health checks and resource actions in Argo CD's Lua sandbox.

  argocd-lua test [flags] ROOT                   run every health_test.yaml / action_test.yaml under ROOT
  argocd-lua health [flags] HEALTH.lua OBJ       print the health of OBJ (YAML or JSON) as JSON
  argocd-lua discover [flags] DISCOVERY.lua OBJ  print the discovered actions as JSON
  argocd-lua action [flags] ACTION.lua OBJ [NAME=VALUE...]  print the changed object as JSON

flags: --open-libs (resource.customizations.useOpenLibs: true), --now RFC3339 (fix os.time/os.date)
exit codes: 0 ok, 1 a test failed or the script raised an error, 2 usage or unreadable input
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	fset := flag.NewFlagSet(args[0], flag.ContinueOnError)
	openLibs := fset.Bool("open-libs", false, "open all standard libraries (useOpenLibs)")
	now := fset.String("now", "", "fixed clock for os.time and os.date (RFC 3339)")
	asJSON := fset.Bool("json", false, "test: print the results as JSON lines")
	if err := fset.Parse(args[1:]); err != nil {
		return 2
	}
	engine := Engine{OpenLibs: *openLibs}
	if *now != "" {
		t, err := time.Parse(time.RFC3339, *now)
		if err != nil {
			fmt.Fprintln(os.Stderr, "argocd-lua: --now:", err)
			return 2
		}
		engine.Now = t
	}
	rest := fset.Args()
	switch {
	case args[0] == "test" && len(rest) == 1:
		return runTests(engine, rest[0], *asJSON)
	case args[0] == "health" && len(rest) == 2:
		return runOne(rest, func(obj map[string]any, script string) (any, error) { return engine.Health(obj, script) })
	case args[0] == "discover" && len(rest) == 2:
		return runOne(rest, func(obj map[string]any, script string) (any, error) { return engine.Discover(obj, script) })
	case args[0] == "action" && len(rest) >= 2:
		params := map[string]string{}
		for _, kv := range rest[2:] {
			name, value, ok := strings.Cut(kv, "=")
			if !ok {
				fmt.Fprintf(os.Stderr, "argocd-lua: parameter %q is not NAME=VALUE\n", kv)
				return 2
			}
			params[name] = value
		}
		return runOne(rest[:2], func(obj map[string]any, script string) (any, error) { return engine.Action(obj, script, params) })
	}
	fmt.Fprint(os.Stderr, usage)
	return 2
}

func runOne(paths []string, f func(map[string]any, string) (any, error)) int {
	script, err := os.ReadFile(paths[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		return 2
	}
	obj, err := readObject(paths[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		return 2
	}
	out, err := f(obj, string(script))
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua: script error:", err)
		return 1
	}
	data, _ := json.Marshal(out)
	fmt.Println(string(data))
	return 0
}

func runTests(engine Engine, root string, asJSON bool) int {
	results, err := engine.RunSuites(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		return 2
	}
	passed, failed := 0, 0
	for _, r := range results {
		if asJSON {
			data, _ := json.Marshal(r)
			fmt.Println(string(data))
		} else if r.Passed {
			fmt.Println("ok   " + r.Name)
		} else {
			fmt.Println("FAIL " + r.Name + ": " + r.Detail)
		}
		if r.Passed {
			passed++
		} else {
			failed++
		}
	}
	if !asJSON {
		fmt.Printf("%d passed, %d failed\n", passed, failed)
	}
	if len(results) == 0 {
		fmt.Fprintln(os.Stderr, "argocd-lua: no test found under", root)
		return 1
	}
	if failed > 0 {
		return 1
	}
	return 0
}
