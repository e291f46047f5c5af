package main

import (
	"context"
	"fmt"
	"io"
)

func runQueue(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "kioskd queue: not implemented yet")
	return 1
}
