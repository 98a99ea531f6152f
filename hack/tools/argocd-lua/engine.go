// Package main runs Argo CD resource customizations (health checks and resource actions) the
// way an Argo CD installed with argocd-cm keys runs them: gopher-lua (Argo CD's engine) with
// the standard libraries skipped and only the package, base and table libraries plus a safe os
// library (time and date) opened, a 1 s timeout, `obj` and `actionParams` as globals, and the
// result turned into JSON. That mirrors util/lua in argoproj/argo-cd (its VM.runLua with
// UseOpenLibs false): the argo-cd module itself is not buildable from the module proxy here
// (its gitops-engine dependency fails), so this harness re-states its behaviour on the same
// gopher-lua version family.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Engine options that differ between runs.
type Engine struct {
	// OpenLibs is Argo CD's resource.customizations.useOpenLibs: false for argocd-cm scripts
	// unless the operator of Argo CD sets it.
	OpenLibs bool
	// Now fixes the clock of the safe os library (tests); zero means the real clock.
	Now time.Time
}

func (e Engine) run(obj map[string]any, script string, params map[string]string) (lua.LValue, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !e.OpenLibs})
	defer l.Close()
	clock := func() time.Time {
		if e.Now.IsZero() {
			return time.Now()
		}
		return e.Now
	}
	libs := []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, safeOs(clock)},
	}
	for _, lib := range libs {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsModule(clock))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	p := l.CreateTable(0, len(params))
	for k, v := range params {
		p.RawSetH(lua.LString(k), lua.LString(v))
	}
	l.SetGlobal("actionParams", p)
	l.SetGlobal("obj", toLua(l, obj))
	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
		// Argo CD strips the stack trace from run errors: the user sees the message only.
		return nil, errors.New(apiErr.Object.String())
	}
	if err != nil {
		return nil, err
	}
	return l.Get(-1), nil
}

// toLua converts decoded JSON the way Argo CD's decodeValue does (numbers become floats,
// json.Number a string, arrays and maps tables).
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

// fromLua converts a Lua result to JSON-shaped Go values the way gopher-json encodes it: a
// table with only an array part (or nothing) is an array, one with string keys an object.
func fromLua(value lua.LValue, depth int) (any, error) {
	if depth > 64 {
		return nil, errors.New("nested table too deep")
	}
	switch v := value.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(v), nil
	case lua.LNumber:
		return float64(v), nil
	case lua.LString:
		return string(v), nil
	case *lua.LTable:
		arrayLen := v.MaxN()
		keys := map[string]lua.LValue{}
		var bad error
		count := 0
		v.ForEach(func(k, item lua.LValue) {
			count++
			if s, ok := k.(lua.LString); ok {
				keys[string(s)] = item
			} else if _, ok := k.(lua.LNumber); !ok {
				bad = fmt.Errorf("cannot encode a table key of type %s", k.Type())
			}
		})
		if bad != nil {
			return nil, bad
		}
		if len(keys) == 0 && count == arrayLen {
			out := make([]any, 0, arrayLen)
			for i := 1; i <= arrayLen; i++ {
				item, err := fromLua(v.RawGetInt(i), depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, item)
			}
			return out, nil
		}
		if len(keys) != count {
			return nil, errors.New("cannot encode a table mixing array and string keys")
		}
		out := make(map[string]any, len(keys))
		names := make([]string, 0, len(keys))
		for k := range keys {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			item, err := fromLua(keys[k], depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = item
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot encode a value of type %s", value.Type())
}

var healthCodes = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// Health runs a health.lua like Argo CD's ExecuteHealthLua.
func (e Engine) Health(obj map[string]any, script string) (map[string]string, error) {
	ret, err := e.run(obj, script, nil)
	if err != nil {
		return nil, err
	}
	switch ret.Type() {
	case lua.LTNil:
		return map[string]string{}, nil
	case lua.LTTable:
	default:
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	decoded, err := fromLua(ret, 0)
	if err != nil {
		return nil, err
	}
	table, ok := decoded.(map[string]any)
	if !ok {
		return map[string]string{}, nil // Argo CD: an array decodes to an empty status
	}
	out := map[string]string{}
	for _, k := range []string{"status", "message"} {
		if v, present := table[k]; present {
			s, isString := v.(string)
			if !isString {
				return nil, fmt.Errorf("health %s is a %T, not a string", k, v)
			}
			out[k] = s
		}
	}
	if !healthCodes[out["status"]] {
		return map[string]string{"status": "Unknown", "message": "Lua returned an invalid health status"}, nil
	}
	return out, nil
}

// runTable runs a script that must return a table, decoded as JSON values.
func (e Engine) runTable(obj map[string]any, script string, params map[string]string) (any, error) {
	ret, err := e.run(obj, script, params)
	if err != nil {
		return nil, err
	}
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	return fromLua(ret, 0)
}

// Action runs an action.lua like Argo CD's ExecuteResourceAction for the patch case.
func (e Engine) Action(obj map[string]any, script string, params map[string]string) (map[string]any, error) {
	decoded, err := e.runTable(obj, script, params)
	if err != nil {
		return nil, err
	}
	out, ok := decoded.(map[string]any)
	if !ok {
		return nil, errors.New("this harness supports actions that return the changed object only")
	}
	return cleanObject(out, obj), nil
}

// cleanObject undoes gopher-json's encoding of an empty table as [] where the input held an
// object, as Argo CD's cleanReturnedObj does.
func cleanObject(out, in map[string]any) map[string]any {
	for k, newValue := range out {
		oldValue, present := in[k]
		if !present {
			continue
		}
		switch nv := newValue.(type) {
		case map[string]any:
			if ov, ok := oldValue.(map[string]any); ok {
				out[k] = cleanObject(nv, ov)
			}
		case []any:
			switch ov := oldValue.(type) {
			case map[string]any:
				if len(nv) == 0 {
					out[k] = map[string]any{}
				}
			case []any:
				out[k] = cleanArray(nv, ov)
			}
		}
	}
	return out
}

// cleanArray applies cleanObject to the elements of an array, pairwise with the input's.
func cleanArray(out, in []any) []any {
	for i := range out {
		if i >= len(in) {
			break
		}
		switch nv := out[i].(type) {
		case map[string]any:
			if ov, ok := in[i].(map[string]any); ok {
				out[i] = cleanObject(nv, ov)
			}
		case []any:
			if ov, ok := in[i].([]any); ok {
				out[i] = cleanArray(nv, ov)
			}
		}
	}
	return out
}

// Discover runs actions/discovery.lua like ExecuteResourceActionDiscovery.
func (e Engine) Discover(obj map[string]any, script string) ([]map[string]any, error) {
	decoded, err := e.runTable(obj, script, nil)
	if err != nil {
		return nil, err
	}
	table, ok := decoded.(map[string]any)
	if !ok {
		return []map[string]any{}, nil // [] means no action
	}
	names := make([]string, 0, len(table))
	for k := range table {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]map[string]any, 0, len(names))
	for _, name := range names {
		action := map[string]any{"name": name}
		if fields, isMap := table[name].(map[string]any); isMap {
			for k, v := range fields {
				action[k] = v
			}
		}
		if _, set := action["disabled"]; !set {
			action["disabled"] = false
		}
		out = append(out, action)
	}
	return out, nil
}
