// Command privateline is a PrivateLine client for the terminal and for
// scripts: accounts, sessions, keys and contact verification. Everything
// is in package cli; see docs/cli.md.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/privateline/privateline/cmd/privateline/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := cli.Main(ctx, os.Args[1:], cli.System())
	stop()
	os.Exit(code)
}
