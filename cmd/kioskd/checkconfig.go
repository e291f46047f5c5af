package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/credentials"
	"github.com/kioskd/kioskd/display"
	"github.com/kioskd/kioskd/internal/httpserve"
)

// loadConfig parses --config from args and loads it. It prints problems and
// returns a non-zero exit code when the configuration is unusable.
func loadConfig(name string, args []string, stderr io.Writer, extra func(fs *flag.FlagSet)) (*config.Config, *flag.FlagSet, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/kioskd/kioskd.yaml", "configuration file")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, fs, 2
	}
	cfg, err := config.Load(*path, nil)
	if err != nil {
		var problems config.Problems
		if errors.As(err, &problems) {
			for _, p := range problems {
				fmt.Fprintf(stderr, "%s: %s\n", *path, p)
			}
		} else {
			fmt.Fprintf(stderr, "kioskd: %v\n", err)
		}
		return nil, fs, 2
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "%s: warning: %s\n", *path, w)
	}
	return cfg, fs, 0
}

func checkConfig(args []string, stdout, stderr io.Writer) int {
	var print bool
	cfg, _, code := loadConfig("check-config", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&print, "print", false, "print the merged configuration, each value with the file and line it came from")
	})
	if code != 0 {
		return code
	}
	// Message overrides, catalogs, the logo and the colours are checked by
	// the display itself, one problem a line.
	if _, err := display.New(cfg.Display, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "%s: %s\n", cfg.Path, line)
		}
		return 2
	}
	if f := cfg.Metrics.WebConfigFile; f != "" {
		if err := httpserve.CheckWebConfig(f); err != nil {
			fmt.Fprintf(stderr, "%s: metrics.web_config_file: %v\n", cfg.Path, err)
			return 2
		}
	}
	// The credentials file is checked row by row, every bad row reported.
	if cfg.Credentials.File != "" {
		if _, err := credentials.NewResolver(cfg.Credentials, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
			var p credentials.Problems
			if errors.As(err, &p) {
				for _, line := range p {
					fmt.Fprintf(stderr, "%s: credentials.file %s: %s\n", cfg.Path, cfg.Credentials.File, line)
				}
			} else {
				fmt.Fprintf(stderr, "%s: %v\n", cfg.Path, err)
			}
			return 2
		}
	}
	if print {
		return printConfig(cfg, stdout, stderr)
	}
	fmt.Fprintf(stdout, "%s: ok\n", cfg.Path)
	// Where the face images are kept, and with which key: an operator
	// backing up or wiping a box needs both.
	if cfg.Queue.Encrypt {
		fmt.Fprintf(stdout, "queue: %s, encrypted (AES-256-GCM) with the %s\n", cfg.Queue.Path, cfg.Queue.KeySource)
	} else {
		fmt.Fprintf(stdout, "queue: %s, NOT encrypted (queue.encrypt: false)\n", cfg.Queue.Path)
	}
	return 0
}

// printConfig writes the configuration kioskd would run with: the main file
// and its drop-ins merged, defaults filled in, secrets left out.
func printConfig(cfg *config.Config, stdout, stderr io.Writer) int {
	src, err := config.Sources(cfg.Path)
	if err == nil {
		var dropIns []string
		if dropIns, err = config.DropIns(cfg.Path); err == nil {
			fmt.Fprintf(stdout, "# kioskd configuration from %s", cfg.Path)
			for _, d := range dropIns {
				fmt.Fprintf(stdout, "\n#   then %s", d)
			}
			fmt.Fprint(stdout, "\n# each value: the file:line it came from, or default; secrets are not shown\n")
			err = config.WriteAnnotated(stdout, cfg, src)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cfg.Path, err)
		return 2
	}
	return 0
}
