package lab

import "strings"

// goTestFlags are the go test flags that the test binary takes as
// -test.NAME; true marks the boolean ones.
var goTestFlags = map[string]bool{
	"v": true, "short": true, "benchmem": true, "failfast": true, "fullpath": true,
	"run": false, "skip": false, "count": false, "timeout": false, "bench": false,
	"benchtime": false, "cpu": false, "parallel": false, "list": false, "shuffle": false,
	"fuzz": false, "fuzztime": false, "fuzzminimizetime": false,
}

// TranslateTestFlags turns go test flags ("-run X", "-v", "-count=1") into
// the test binary's ("-test.run X", "-test.v", "-test.count=1"). Other
// arguments, and everything after "-args", pass unchanged.
func TranslateTestFlags(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-args" || a == "--args" {
			return append(out, args[i+1:]...)
		}
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			out = append(out, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		name, value, hasValue := strings.Cut(name, "=")
		name = strings.TrimPrefix(name, "test.")
		isBool, known := goTestFlags[name]
		if !known {
			out = append(out, a)
			continue
		}
		f := "-test." + name
		switch {
		case hasValue:
			out = append(out, f+"="+value)
		case isBool:
			out = append(out, f)
		case i+1 < len(args):
			out = append(out, f+"="+args[i+1])
			i++
		default:
			out = append(out, f)
		}
	}
	return out
}
