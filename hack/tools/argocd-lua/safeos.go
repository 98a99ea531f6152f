package main

import (
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// safeOs is the os library Argo CD opens for customizations: time and date only (no exec,
// files, env or exit). Written here from Argo CD's documented behaviour of util/lua's safe os.
func safeOs(clock func() time.Time) lua.LGFunction {
	return func(l *lua.LState) int {
		mod := l.RegisterModule(lua.OsLibName, osFuncs(clock))
		l.Push(mod)
		return 1
	}
}

func safeOsModule(clock func() time.Time) lua.LGFunction {
	return func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), osFuncs(clock)))
		return 1
	}
}

func osFuncs(clock func() time.Time) map[string]lua.LGFunction {
	return map[string]lua.LGFunction{
		"time": func(l *lua.LState) int {
			if l.GetTop() == 0 || l.Get(1) == lua.LNil {
				l.Push(lua.LNumber(clock().Unix()))
				return 1
			}
			t := l.CheckTable(1)
			field := func(name string, def int) int {
				if n, ok := t.RawGetString(name).(lua.LNumber); ok {
					return int(n)
				}
				return def
			}
			when := time.Date(field("year", 1970), time.Month(field("month", 1)), field("day", 1),
				field("hour", 12), field("min", 0), field("sec", 0), 0, time.Local)
			l.Push(lua.LNumber(when.Unix()))
			return 1
		},
		"date": func(l *lua.LState) int {
			format := l.OptString(1, "%c")
			when := clock()
			if l.GetTop() >= 2 {
				when = time.Unix(int64(l.CheckNumber(2)), 0)
			}
			when = when.Local()
			if strings.HasPrefix(format, "!") {
				when = when.UTC()
				format = format[1:]
			}
			if strings.HasPrefix(format, "*t") {
				t := l.NewTable()
				for k, v := range map[string]int{
					"year": when.Year(), "month": int(when.Month()), "day": when.Day(), "hour": when.Hour(),
					"min": when.Minute(), "sec": when.Second(), "wday": int(when.Weekday()) + 1, "yday": when.YearDay(),
				} {
					t.RawSetString(k, lua.LNumber(v))
				}
				t.RawSetString("isdst", lua.LFalse)
				l.Push(t)
				return 1
			}
			l.Push(lua.LString(strftime(when, format)))
			return 1
		},
	}
}

var strftimeLayouts = map[byte]string{
	'a': "Mon", 'A': "Monday", 'b': "Jan", 'B': "January", 'c': "02 Jan 06 15:04 MST", 'd': "02",
	'F': "2006-01-02", 'H': "15", 'I': "03", 'm': "01", 'M': "04", 'p': "PM", 'S': "05",
	'x': "01/02/06", 'X': "15:04:05", 'y': "06", 'Y': "2006", 'z': "-0700", 'Z': "MST",
}

func strftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		if layout, ok := strftimeLayouts[format[i]]; ok {
			b.WriteString(t.Format(layout))
		} else {
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}
