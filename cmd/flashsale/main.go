// Command flashsale serves the flash-sale HTTP endpoint (serve), checks the
// MySQL tables against the log (reconcile), and runs load tests (bench).
package main

import (
	"errors"
	"fmt"
	"os"
)

const usage = `flashsale: sells scarce stock during a flash sale, durably and fast.

Usage:
  flashsale serve [flags]      run the HTTP endpoint (see: flashsale serve --help)
  flashsale reconcile [flags]  compare the engine's state with MySQL (see: flashsale reconcile --help)
  flashsale bench [flags]      load-test flashsale and the classic designs (see: flashsale bench --help)
`

// exitError carries a specific exit code to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// usageError is a bad command line or environment: main exits 2.
func usageError(err error) error { return &exitError{2, err} }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serveMain(os.Args[2:])
	case "reconcile":
		err = reconcileMain(os.Args[2:])
	case "bench":
		err = benchMain(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "flashsale: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flashsale:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		os.Exit(1)
	}
}
