package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"

	"sigs.k8s.io/yaml"
)

// The upstream test formats of argoproj/argo-cd's resource_customizations.
type healthSuite struct {
	Tests []struct {
		HealthStatus map[string]string `json:"healthStatus"`
		InputPath    string            `json:"inputPath"`
	} `json:"tests"`
}

type actionSuite struct {
	DiscoveryTests []struct {
		InputPath string           `json:"inputPath"`
		Result    []map[string]any `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []struct {
		Action               string            `json:"action"`
		InputPath            string            `json:"inputPath"`
		ExpectedOutputPath   string            `json:"expectedOutputPath"`
		ExpectedErrorMessage string            `json:"expectedErrorMessage"`
		Parameters           map[string]string `json:"parameters"`
	} `json:"actionTests"`
}

type result struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

func readObject(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

func readSuite(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func normalized(v any) any {
	data, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(data, &out)
	return out
}

func show(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

// RunSuites walks root for health_test.yaml and actions/action_test.yaml and runs every case.
func (e Engine) RunSuites(root string) ([]result, error) {
	var results []result
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch d.Name() {
		case "health_test.yaml":
			rs, err := e.runHealthSuite(filepath.Dir(path))
			results = append(results, rs...)
			return err
		case "action_test.yaml":
			rs, err := e.runActionSuite(filepath.Dir(path))
			results = append(results, rs...)
			return err
		}
		return nil
	})
	return results, err
}

func (e Engine) runHealthSuite(dir string) ([]result, error) {
	var suite healthSuite
	if err := readSuite(filepath.Join(dir, "health_test.yaml"), &suite); err != nil {
		return nil, err
	}
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		return nil, err
	}
	var out []result
	for _, test := range suite.Tests {
		r := result{Name: filepath.Join(dir, test.InputPath)}
		obj, err := readObject(filepath.Join(dir, test.InputPath))
		if err != nil {
			return nil, err
		}
		got, err := e.Health(obj, string(script))
		switch {
		case err != nil:
			r.Detail = "health.lua failed: " + err.Error()
		case !reflect.DeepEqual(got, test.HealthStatus):
			r.Detail = fmt.Sprintf("got %s, want %s", show(got), show(test.HealthStatus))
		default:
			r.Passed = true
		}
		out = append(out, r)
	}
	return out, nil
}

func (e Engine) runActionSuite(dir string) ([]result, error) {
	var suite actionSuite
	if err := readSuite(filepath.Join(dir, "action_test.yaml"), &suite); err != nil {
		return nil, err
	}
	var out []result
	if len(suite.DiscoveryTests) > 0 {
		discovery, err := os.ReadFile(filepath.Join(dir, "discovery.lua"))
		if err != nil {
			return nil, err
		}
		for _, test := range suite.DiscoveryTests {
			r := result{Name: filepath.Join(dir, "discovery", test.InputPath)}
			obj, err := readObject(filepath.Join(dir, test.InputPath))
			if err != nil {
				return nil, err
			}
			got, err := e.Discover(obj, string(discovery))
			want := test.Result
			sort.Slice(want, func(i, j int) bool { return fmt.Sprint(want[i]["name"]) < fmt.Sprint(want[j]["name"]) })
			switch {
			case err != nil:
				r.Detail = "discovery.lua failed: " + err.Error()
			case !reflect.DeepEqual(normalized(got), normalized(want)):
				r.Detail = fmt.Sprintf("got %s, want %s", show(got), show(want))
			default:
				r.Passed = true
			}
			out = append(out, r)
		}
	}
	for _, test := range suite.ActionTests {
		r := result{Name: filepath.Join(dir, test.Action, test.InputPath)}
		script, err := os.ReadFile(filepath.Join(dir, test.Action, "action.lua"))
		if err != nil {
			return nil, err
		}
		obj, err := readObject(filepath.Join(dir, test.InputPath))
		if err != nil {
			return nil, err
		}
		got, runErr := e.Action(obj, string(script), test.Parameters)
		if test.ExpectedErrorMessage != "" {
			if runErr == nil {
				r.Detail = "expected the error " + test.ExpectedErrorMessage + ", got an object"
			} else if runErr.Error() != test.ExpectedErrorMessage {
				r.Detail = fmt.Sprintf("got error %q, want %q", runErr, test.ExpectedErrorMessage)
			} else {
				r.Passed = true
			}
			out = append(out, r)
			continue
		}
		if runErr != nil {
			r.Detail = "action.lua failed: " + runErr.Error()
			out = append(out, r)
			continue
		}
		want, err := readObject(filepath.Join(dir, test.ExpectedOutputPath))
		if err != nil {
			return nil, err
		}
		if reflect.DeepEqual(normalized(got), normalized(want)) {
			r.Passed = true
		} else {
			r.Detail = fmt.Sprintf("got %s, want %s", show(got), show(want))
		}
		out = append(out, r)
	}
	return out, nil
}
