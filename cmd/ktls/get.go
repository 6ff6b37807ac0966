package main

import (
	"context"
	"fmt"
	"io"
)

// runGet runs "ktls get".
func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "ktls get: not implemented yet\n")
	return exitUsage
}
