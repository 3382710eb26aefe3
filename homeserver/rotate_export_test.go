package homeserver

import "io"

// RotateKey runs the rotate-key command for cfg.
func RotateKey(cfg Config, stdout, stderr io.Writer) int { return rotateKey(cfg, stdout, stderr) }
