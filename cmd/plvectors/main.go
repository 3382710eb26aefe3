// Command plvectors writes PrivateLine's deterministic end-to-end
// encryption test vectors (spec/vectors/*.json) with the Go SDK:
//
//	go run ./cmd/plvectors -out spec/vectors
//
// Re-running it reproduces the committed files byte for byte: every random
// input comes from a labelled SHA-256 counter stream, and the three RSA-4096
// keys are fixed in rsakeys.json (Go 1.26 ignores the random source of
// rsa.GenerateKey, so keys cannot be derived from a seed). -newkeys prints
// a fresh rsakeys.json; replacing it changes every RSA-dependent vector.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	out := flag.String("out", "spec/vectors", "directory to write the vector files to")
	newKeys := flag.Bool("newkeys", false, "print a freshly generated rsakeys.json to stdout and exit")
	flag.Parse()
	var err error
	if *newKeys {
		err = printNewKeys(os.Stdout)
	} else {
		err = generate(*out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plvectors:", err)
		os.Exit(1)
	}
}
