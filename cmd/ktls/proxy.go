package main

import (
	"context"
	"fmt"
	"io"
)

// runProxy runs "ktls proxy".
func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "ktls proxy: not implemented yet\n")
	return exitUsage
}
