// Command incode-sim runs a local emulator of the Incode ID API, for the
// demo, for tests and for integrators who want to test a door without
// Incode. See docs/incode-sim.md.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kioskd/kioskd/incodesim"
)

const usageHead = `incode-sim: a local emulator of the Incode ID API (POST /omni/incode-id/authenticate,
GET /omni/incode-id/authentication/:id, /verification/:id, /userinfo, and webhooks).

Usage:
  incode-sim --listen 127.0.0.1:8080 --api-key KEY --device-token TOKEN \
             [--enroll DIR] [--script "pass,fail:hasFaceMask,http:503,..."] [--webhook-url URL]...

Faces in --enroll DIR PASS (the person's name comes from the file name,
Eileen_Collins.jpg is "Eileen Collins"); everyone else FAILs with faceMatchFailed.
--script forces outcomes in order before the matcher decides again. Items:
  pass  fail:<failureReason>  http:<code>[:retry-after=N]  delay:<dur>  reset  hang
  half  html  garbage  wrongshape  noauthid  dupstatus  upperkeys  passreason
  userinfo:noname
Prefix an item with authentication:, verification: or userinfo: to aim it at that
endpoint (e.g. userinfo:http:503); unprefixed items apply to authenticate.
Control endpoints: GET /_sim/requests, /_sim/webhooks, /_sim/identities, /_sim/status,
GET|POST /_sim/script, POST /_sim/reset, POST /_sim/enroll.
When ready it prints "incode-sim listening on http://ADDR" on stdout; SIGINT or
SIGTERM stops it.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// run is the whole command; it returns the exit status: 0 after a clean
// stop, 1 when serving failed, 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("incode-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		printFlags(stderr, fs)
	}
	var (
		listen       = fs.String("listen", "127.0.0.1:8080", "`ADDR` to listen on (port 0 picks a free port; the line on stdout gives the real one)")
		apiKey       = fs.String("api-key", "", "expected x-api-key `KEY` (or $INCODE_SIM_API_KEY, or --api-key-file)")
		apiKeyFile   = fs.String("api-key-file", "", "read the API key from `FILE`")
		devToken     = fs.String("device-token", "", "expected X-Incode-Hardware-Id `TOKEN` of the device (or $INCODE_SIM_DEVICE_TOKEN, or --device-token-file)")
		devTokenFile = fs.String("device-token-file", "", "read the device token from `FILE`")
		enroll       = fs.String("enroll", "", "`DIR` of JPEG/PNG faces of enrolled people; they PASS")
		scriptFlag   = fs.String("script", "", "comma-separated `ITEMS` played in order before the matcher decides again")
		latency      = fs.Duration("latency", 0, "service time added before every API answer, e.g. 300ms")
		bandwidth    = fs.String("bandwidth", "", "limit the upload read rate to `BPS`, e.g. 2Mbit/s, 500kbps, 250KB/s (bits per second when bare)")
		hookAttempts = fs.Int("webhook-attempts", 5, "delivery attempts per webhook event and URL")
		hookBackoff  = fs.Duration("webhook-backoff", 500*time.Millisecond, "wait after the first failed webhook delivery, doubling up to 30s")
		maxSide      = fs.Int("max-image-side", 10000, "largest accepted image width or height in `PIXELS`")
		maxB64       = fs.Int("max-image-bytes", 20<<20, "largest accepted base64Image in `BYTES`")
		tlsCert      = fs.String("tls-cert", "", "serve HTTPS with this certificate `FILE` (PEM; with --tls-key)")
		tlsKey       = fs.String("tls-key", "", "private key `FILE` for --tls-cert")
		logLevel     = fs.String("log-level", "info", "log `LEVEL` on stderr: debug, info, warn or error")
		logFormat    = fs.String("log-format", "text", "log `FORMAT` on stderr: text or json")
		hooks        stringList
	)
	fs.Var(&hooks, "webhook-url", "POST webhook events to `URL` (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "incode-sim: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	var problems []string
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		problems = append(problems, fmt.Sprintf("--log-level %q: want debug, info, warn or error", *logLevel))
	}
	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	default:
		problems = append(problems, fmt.Sprintf("--log-format %q: want text or json", *logFormat))
		handler = slog.NewTextHandler(stderr, nil)
	}
	log := slog.New(handler)
	key, err := secret(*apiKey, *apiKeyFile, getenv("INCODE_SIM_API_KEY"))
	if err != nil {
		problems = append(problems, "--api-key-file: "+err.Error())
	} else if key == "" {
		problems = append(problems, "--api-key is required")
	}
	tok, err := secret(*devToken, *devTokenFile, getenv("INCODE_SIM_DEVICE_TOKEN"))
	if err != nil {
		problems = append(problems, "--device-token-file: "+err.Error())
	} else if tok == "" {
		problems = append(problems, "--device-token is required")
	}
	var bps int64
	if *bandwidth != "" {
		if bps, err = incodesim.ParseBandwidth(*bandwidth); err != nil {
			problems = append(problems, "--bandwidth: "+err.Error())
		}
	}
	if *latency < 0 {
		problems = append(problems, "--latency must not be negative")
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		problems = append(problems, "--tls-cert and --tls-key go together")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "incode-sim: %s\n", p)
		}
		fmt.Fprintln(stderr, "incode-sim: see incode-sim --help")
		return 2
	}
	var items []string
	if *scriptFlag != "" {
		items = []string{*scriptFlag}
	}
	sim, err := incodesim.New(incodesim.Options{
		APIKey:          key,
		DeviceToken:     tok,
		EnrollDir:       *enroll,
		Script:          items,
		WebhookURLs:     hooks,
		Latency:         *latency,
		BandwidthBps:    bps,
		WebhookAttempts: *hookAttempts,
		WebhookBackoff:  *hookBackoff,
		MaxImageSide:    *maxSide,
		MaxBase64Bytes:  *maxB64,
	}, log)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 2
	}
	defer sim.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "incode-sim: %v\n", err)
		return 1
	}
	scheme := "http"
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "incode-sim: TLS: %v\n", err)
			return 2
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	srv := &http.Server{
		Handler:           sim.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "incode-sim listening on %s://%s\n", scheme, ln.Addr())

	select {
	case err := <-served:
		fmt.Fprintf(stderr, "incode-sim: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("stopping")
	// Closing the emulator first releases requests that hang on purpose.
	sim.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-served
	return 0
}

// printFlags lists the flags the way they are written in the docs, with two
// dashes.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// secret picks a flag value, else a file's first line, else the
// environment's value.
func secret(flagValue, file, env string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s is empty", file)
		}
		return v, nil
	}
	return strings.TrimSpace(env), nil
}
