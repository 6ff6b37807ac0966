package main

import (
	"context"
	"fmt"
	"io"
)

// runBench runs "ktls bench".
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "ktls bench: not implemented yet\n")
	return exitUsage
}
