// Command homeserver runs a PrivateLine homeserver. Configuration comes from
// the environment and an optional .env file; see README.md and .env.example.
package main

import (
	"os"

	"github.com/privateline/privateline/homeserver"
)

func main() {
	os.Exit(homeserver.Main(os.Args[1:], os.Stdout, os.Stderr))
}
