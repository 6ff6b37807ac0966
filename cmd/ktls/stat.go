package main

import (
	"context"
	"fmt"
	"io"
)

// runStat runs "ktls stat".
func runStat(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "ktls stat: not implemented yet\n")
	return exitUsage
}
