// Command kioskd is the face-authentication edge agent: it reads a camera,
// picks a good face frame, authenticates it with Incode ID and drives the
// door and the kiosk display from the answer.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: kioskd <command> [flags]

commands:
  run           --config FILE                 run the agent
  check-config  --config FILE                 exit 0, or 2 with one line per problem
  snapshot      --config FILE --input PATH [--out shot.jpg]   JSON quality report
  queue         stats|list|drain|retry|purge --config FILE [--json]
  events        list|export --config FILE [--since T] [--until T] [--format jsonl|csv]
  version                                     print build information
`

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runAgent(ctx, args[1:], stdout, stderr)
	case "check-config":
		return checkConfig(args[1:], stdout, stderr)
	case "snapshot":
		return runSnapshot(ctx, args[1:], stdout, stderr)
	case "queue":
		return runQueue(ctx, args[1:], stdout, stderr)
	case "events":
		return runEvents(args[1:], stdout, stderr, time.Now)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, buildInfo())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "kioskd: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
