package homeserver

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/privateline/privateline/internal/logging"
)

// Main is the homeserver command: with no arguments it serves; the
// sub-command decrypt-log FILE prints an encrypted log file, gen-vapid a new
// VAPID key pair for Web Push. It returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("homeserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	envFile := fs.String("env-file", ".env", "optional file of KEY=VALUE settings; the environment wins")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: homeserver [-env-file F]            serve (configuration from the environment)\n")
		fmt.Fprintf(stderr, "       homeserver [-env-file F] decrypt-log FILE   print a log written with ENCRYPTED_LOG_KEY\n")
		fmt.Fprintf(stderr, "       homeserver gen-vapid                     print a new VAPID key pair for Web Push (VAPID_PRIVATE_KEY)\n")
		fmt.Fprintf(stderr, "       homeserver [-env-file F] rotate-key      replace the server identity key (server stopped; see docs/federation.md)\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.Arg(0) == "gen-vapid" { // needs no configuration
		if fs.NArg() != 1 {
			fs.Usage()
			return 2
		}
		return genVAPID(stdout, stderr)
	}
	dotenv, err := ReadDotEnv(*envFile)
	if err != nil {
		fmt.Fprintln(stderr, "homeserver:", err)
		return 1
	}
	cfg, err := LoadConfig(EnvLookup(dotenv))
	if err != nil {
		fmt.Fprintln(stderr, "homeserver:", err)
		return 1
	}
	switch fs.Arg(0) {
	case "":
	case "decrypt-log":
		return decryptLog(cfg, fs.Args()[1:], stdout, stderr)
	case "rotate-key":
		if fs.NArg() != 1 {
			fs.Usage()
			return 2
		}
		return rotateKey(cfg, stdout, stderr)
	default:
		fs.Usage()
		return 2
	}
	log, closer, err := logging.New(logging.Options{
		Disabled:      cfg.LoggingDisabled,
		Path:          cfg.LogPath,
		RetentionDays: cfg.LogRetentionDays,
		EncryptKey:    cfg.EncryptedLogKey,
		SentryDSN:     cfg.SentryDSN,
		Stderr:        stderr,
		Environment:   cfg.Env,
		Release:       release(),
	})
	if err != nil {
		fmt.Fprintln(stderr, "homeserver: logging:", err)
		return 1
	}
	defer closer.Close()
	srv, err := New(cfg, Options{Log: log})
	if err != nil {
		log.Error("cannot start", "err", err)
		fmt.Fprintln(stderr, "homeserver:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Run(ctx); err != nil {
		log.Error("homeserver failed", "err", err)
		fmt.Fprintln(stderr, "homeserver:", err)
		return 1
	}
	return 0
}

func decryptLog(cfg Config, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: homeserver decrypt-log FILE")
		return 2
	}
	if cfg.EncryptedLogKey == nil {
		fmt.Fprintln(stderr, "homeserver: decrypt-log needs ENCRYPTED_LOG_KEY, the key the log was written with")
		return 1
	}
	f, err := os.Open(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "homeserver:", err)
		return 1
	}
	defer f.Close()
	if err := logging.Decrypt(f, stdout, cfg.EncryptedLogKey); err != nil {
		fmt.Fprintln(stderr, "homeserver:", err)
		return 1
	}
	return 0
}

// release names this build for error reports.
func release() string {
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	return "privateline-homeserver@" + v
}
