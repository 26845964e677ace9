// Command flashsale serves the flash-sale HTTP endpoint (serve), checks the
// MySQL tables against the log (reconcile), and runs load tests (bench).
package main

import (
	"fmt"
	"os"
)

const usage = `flashsale: sells scarce stock during a flash sale, durably and fast.

Usage:
  flashsale serve [flags]      run the HTTP endpoint (see: flashsale serve --help)
  flashsale reconcile [flags]  compare the engine's state with MySQL (see: flashsale reconcile --help)
  flashsale bench [flags]      load-test flashsale and the classic designs (see: flashsale bench --help)
`

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
		if code, ok := err.(interface{ ExitCode() int }); ok {
			os.Exit(code.ExitCode())
		}
		os.Exit(1)
	}
}
