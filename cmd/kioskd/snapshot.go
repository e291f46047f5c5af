package main

import (
	"context"
	"fmt"
	"io"
)

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "kioskd snapshot: not implemented yet")
	return 1
}
