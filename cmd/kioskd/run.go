package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
)

func buildInfo() string {
	return fmt.Sprintf("kioskd %s (%s, %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, _, code := loadConfig("run", args, stderr, nil)
	if code != 0 {
		return code
	}
	_ = cfg
	fmt.Fprintln(stderr, "kioskd run: not implemented yet")
	return 1
}
