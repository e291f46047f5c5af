package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/decision"
	"github.com/kioskd/kioskd/events"
	"github.com/kioskd/kioskd/queue"
	"github.com/kioskd/kioskd/uploader"
)

const queueUsage = `usage: kioskd queue <command> --config FILE [flags]

commands:
  stats   [--json]          depth, bytes, age of the oldest capture, dead letters
  list    [--dead] [--json] queued captures (or dead letters), metadata only
  drain   [--json]          deliver every pending capture now, oldest first, then exit
                            (exit 1 if the service stopped answering; the rest stay queued)
  retry   [--json]          move every dead letter back to the queue
  purge   [--dead] [--json] delete every pending capture (or every dead letter)

The queue file is held by a running kioskd: stop the service first
(systemctl stop kioskd); while it runs, its metrics show the same figures.
`

type queueFlags struct {
	json, dead bool
}

func runQueue(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(stdout, queueUsage)
			return 0
		}
		fmt.Fprint(stderr, queueUsage)
		return 2
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "stats", "list", "drain", "retry", "purge":
	case "help":
		fmt.Fprint(stdout, queueUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "kioskd queue: unknown command %q\n\n%s", sub, queueUsage)
		return 2
	}
	var fl queueFlags
	extra := func(fs *flag.FlagSet) {
		fs.BoolVar(&fl.json, "json", false, "print JSON")
		if sub == "list" || sub == "purge" {
			fs.BoolVar(&fl.dead, "dead", false, "the dead letters instead of the pending captures")
		}
	}
	var (
		cfg  *config.Config
		fs   *flag.FlagSet
		code int
	)
	if sub == "drain" {
		// Delivering needs everything the service needs.
		cfg, fs, code = loadConfig("queue drain", rest, stderr, extra)
		if cfg != nil && cfg.Queue.Encrypt && cfg.Queue.Key == "" {
			// The service has not made its key yet, so it sealed nothing;
			// should the file say otherwise, Open refuses with the reason.
			cfg.Queue.Encrypt = false
		}
	} else {
		cfg, fs, code = loadQueueConfig("queue "+sub, rest, stderr, extra)
	}
	if code != 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kioskd queue %s: unexpected arguments %q\n", sub, fs.Args())
		return 2
	}
	log, _ := newLogger(cfg.Log, stderr)

	// These commands are often run as root: they never create a file or
	// directory (the service makes them, as its own user), never move a
	// damaged file aside, and stats and list only read.
	opts := []queue.Option{queue.WithExisting()}
	switch {
	case sub == "stats" || sub == "list":
		opts = []queue.Option{queue.WithReadOnly()}
	case sub != "drain":
		// Nothing but drain reads an image: the key, often a credential
		// only the service can read, is not needed.
		opts = append(opts, queue.WithMetadataOnly())
	}
	// A throwaway registry: these figures are printed, not scraped.
	reg := prometheus.NewRegistry()
	q, err := queue.Open(cfg.Queue, log, reg, opts...)
	if errors.Is(err, queue.ErrNoFile) {
		return queueNoFile(sub, cfg, fl, stdout, stderr)
	}
	if err != nil {
		if errors.Is(err, queue.ErrLocked) {
			fmt.Fprintf(stderr, "kioskd queue: %v: a running kioskd holds it; stop the service first (systemctl stop kioskd), or read the kioskd_queue_* metrics\n", err)
		} else {
			fmt.Fprintf(stderr, "kioskd queue: %v\n", err)
		}
		return 1
	}
	defer func() {
		if err := q.Close(); err != nil {
			fmt.Fprintf(stderr, "kioskd queue: %v\n", err)
		}
	}()

	switch sub {
	case "stats":
		st, err := q.Stats()
		if err != nil {
			fmt.Fprintf(stderr, "kioskd queue stats: %v\n", err)
			return 1
		}
		return queueStats(st, q.Path(), cfg, fl, stdout, stderr)
	case "list":
		items, err := q.List(fl.dead)
		if err != nil {
			fmt.Fprintf(stderr, "kioskd queue list: %v\n", err)
			return 1
		}
		return queueList(items, fl, stdout, stderr)
	case "retry":
		n, err := q.RetryDead()
		return printCount(stdout, stderr, fl, err, "moved", n, "dead letters moved back to the queue")
	case "purge":
		purge, what := q.Purge, "pending captures deleted"
		if fl.dead {
			purge, what = q.PurgeDead, "dead letters deleted"
		}
		n, err := purge()
		return printCount(stdout, stderr, fl, err, "deleted", n, what)
	default:
		return queueDrain(ctx, q, cfg, log, reg, fl, stdout, stderr)
	}
}

// secretProblem matches the problems of secrets the service reads from
// credentials that exist only while it runs; stats, list, retry and purge
// need none of them.
func secretProblem(p string) bool {
	for _, field := range []string{"incode.api_key_file:", "incode.hardware_id_file:", "queue.key_file:"} {
		if strings.HasPrefix(p, field) {
			return true
		}
	}
	return false
}

// loadQueueConfig is loadConfig for the subcommands that need no secret:
// problems with the API key, the device token or the queue key are
// ignored, every other problem is reported as check-config does.
func loadQueueConfig(name string, args []string, stderr io.Writer, extra func(fs *flag.FlagSet)) (*config.Config, *flag.FlagSet, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/kioskd/kioskd.yaml", "configuration file")
	extra(fs)
	if err := fs.Parse(args); err != nil {
		return nil, fs, 2
	}
	cfg, err := config.Load(*path, nil)
	if err != nil {
		var problems config.Problems
		if !errors.As(err, &problems) || cfg == nil {
			fmt.Fprintf(stderr, "kioskd: %v\n", err)
			return nil, fs, 2
		}
		var left int
		for _, p := range problems {
			if !secretProblem(p) {
				fmt.Fprintf(stderr, "%s: %s\n", *path, p)
				left++
			}
		}
		if left > 0 {
			return nil, fs, 2
		}
	}
	return cfg, fs, 0
}

type statsJSON struct {
	Path             string  `json:"path"`
	Depth            int     `json:"depth"`
	Bytes            int64   `json:"bytes"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	DeadLetters      int     `json:"dead_letters"`
	DeadBytes        int64   `json:"dead_bytes"`
	FileBytes        int64   `json:"file_bytes"`
	MaxItems         int     `json:"max_items"`
	MaxBytes         int64   `json:"max_bytes"`
	TTLSeconds       float64 `json:"ttl_seconds"`
	Encrypted        bool    `json:"encrypted"`
}

// queueNoFile answers a command on a queue file that does not exist yet:
// nothing was ever queued, so there is nothing to show, move or delete.
func queueNoFile(sub string, cfg *config.Config, fl queueFlags, stdout, stderr io.Writer) int {
	switch sub {
	case "stats":
		return queueStats(queue.Stats{}, cfg.Queue.Path, cfg, fl, stdout, stderr)
	case "list":
		return queueList(nil, fl, stdout, stderr)
	case "retry":
		return printCount(stdout, stderr, fl, nil, "moved", 0, "dead letters moved back to the queue")
	case "purge":
		return printCount(stdout, stderr, fl, nil, "deleted", 0, "deleted (no queue file)")
	}
	if fl.json {
		return printJSON(stdout, stderr, drainJSON{})
	}
	fmt.Fprintf(stdout, "no queue file at %s: nothing to deliver\n", cfg.Queue.Path)
	return 0
}

func queueStats(st queue.Stats, path string, cfg *config.Config, fl queueFlags, stdout, stderr io.Writer) int {
	out := statsJSON{
		Path: path, Depth: st.Depth, Bytes: st.Bytes, OldestAgeSeconds: st.OldestAge.Seconds(),
		DeadLetters: st.DeadLetters, DeadBytes: st.DeadBytes, FileBytes: st.FileBytes,
		MaxItems: cfg.Queue.MaxItems, MaxBytes: int64(cfg.Queue.MaxBytes), TTLSeconds: cfg.Queue.TTL.Seconds(),
		Encrypted: cfg.Queue.Encrypt,
	}
	if fl.json {
		return printJSON(stdout, stderr, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "path\t%s\n", out.Path)
	fmt.Fprintf(tw, "depth\t%d\t(max %d)\n", out.Depth, out.MaxItems)
	fmt.Fprintf(tw, "bytes\t%d\t(max %d with dead letters)\n", out.Bytes, out.MaxBytes)
	fmt.Fprintf(tw, "oldest_age_seconds\t%.0f\t(ttl %s)\n", out.OldestAgeSeconds, cfg.Queue.TTL)
	fmt.Fprintf(tw, "dead_letters\t%d\n", out.DeadLetters)
	fmt.Fprintf(tw, "dead_bytes\t%d\n", out.DeadBytes)
	fmt.Fprintf(tw, "file_bytes\t%d\n", out.FileBytes)
	fmt.Fprintf(tw, "encrypted\t%v\n", out.Encrypted)
	return flush(tw, stderr)
}

type itemJSON struct {
	Seq         uint64     `json:"seq"`
	ID          string     `json:"id"`
	Source      string     `json:"source"`
	CapturedAt  time.Time  `json:"captured_at"`
	EnqueuedAt  time.Time  `json:"enqueued_at"`
	Attempts    int        `json:"attempts"`
	NextAttempt time.Time  `json:"next_attempt"`
	DeadAt      *time.Time `json:"dead_at,omitempty"`
	Size        int        `json:"size"`
	LastError   string     `json:"last_error,omitempty"`
}

func queueList(items []queue.Item, fl queueFlags, stdout, stderr io.Writer) int {
	out := make([]itemJSON, 0, len(items))
	for _, it := range items {
		j := itemJSON{Seq: it.Seq, ID: it.ID, Source: it.Source, CapturedAt: it.CapturedAt.UTC(), EnqueuedAt: it.EnqueuedAt.UTC(),
			Attempts: it.Attempts, NextAttempt: it.NextAttempt.UTC(), Size: it.Size, LastError: it.LastError}
		if !it.DeadAt.IsZero() {
			d := it.DeadAt.UTC()
			j.DeadAt = &d
		}
		out = append(out, j)
	}
	if fl.json {
		return printJSON(stdout, stderr, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tID\tSOURCE\tCAPTURED\tATTEMPTS\tNEXT ATTEMPT\tBYTES\tLAST ERROR")
	for _, j := range out {
		next := j.NextAttempt.Format(time.RFC3339)
		if j.DeadAt != nil {
			next = "dead " + j.DeadAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%d\t%s\n", j.Seq, j.ID, j.Source, j.CapturedAt.Format(time.RFC3339),
			j.Attempts, next, j.Size, clipLine(j.LastError, 80))
	}
	return flush(tw, stderr)
}

type drainJSON struct {
	Delivered    int    `json:"delivered"`
	DeadLettered int    `json:"dead_lettered"`
	Remaining    int    `json:"remaining"`
	Stopped      string `json:"stopped,omitempty"`
}

// queueDrain delivers every pending capture once through the Incode client
// and logs one decision line for each answer. A deferred answer is only
// recorded: nothing here drives the door.
func queueDrain(ctx context.Context, q *queue.Queue, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer,
	fl queueFlags, stdout, stderr io.Writer) int {
	client, err := uploader.New(cfg.Incode, "kioskd/"+version, log, reg)
	if err != nil {
		fmt.Fprintf(stderr, "kioskd queue drain: %v\n", err)
		return 1
	}
	// The same delivery and recorder as the service's drainer: one decision
	// line per answer, and a deferred answer never drives the door.
	rec := decision.NewRecorder(log, reg)
	// Deferred answers are access events too, drained here or by the
	// service. Only an existing log is used: one created here, perhaps as
	// root, could lock the service's user out of it.
	if _, err := os.Stat(cfg.EventsPath()); err != nil {
		log.Warn("no event log: the answers are not recorded as access events", "path", cfg.EventsPath())
	} else if l, err := events.Open(cfg.EventsPath(), cfg.Events, log, reg); err != nil {
		log.Warn("event log unavailable: the answers are not recorded as access events", "err", err)
	} else {
		rec.AddSink(events.DecisionSink{Log: l})
	}
	dl := &decision.Delivery{API: client, Rec: rec, Device: cfg.Device,
		Timeout: cfg.Incode.RequestTimeout, RetryAfterMax: cfg.Queue.RetryAfterMax, Now: time.Now, OnAuth: func(out decision.Outcome) {
			if out.AuthError {
				log.Error("the Incode API refused this device's credentials (401/403): check the API key and the device token")
			}
		}}
	d := queue.NewDrainer(q, dl.Deliver, log, reg)
	sum, err := d.Drain(ctx, nil)
	out := drainJSON{Delivered: sum.Delivered, DeadLettered: sum.DeadLettered, Remaining: sum.Remaining}
	if sum.Stopped != nil {
		out.Stopped = uploader.Reason(sum.Stopped)
		if out.Stopped == "" {
			out.Stopped = sum.Stopped.Error()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "kioskd queue drain: %v\n", err)
	}
	if fl.json {
		if c := printJSON(stdout, stderr, out); c != 0 {
			return c
		}
	} else {
		fmt.Fprintf(stdout, "delivered %d, dead-lettered %d, remaining %d\n", out.Delivered, out.DeadLettered, out.Remaining)
		if sum.Stopped != nil {
			fmt.Fprintf(stdout, "stopped: the service did not answer (%s); the remaining captures stay queued\n", out.Stopped)
		}
	}
	if err != nil || sum.Stopped != nil || sum.Remaining > 0 {
		return 1
	}
	return 0
}

func printCount(stdout, stderr io.Writer, fl queueFlags, err error, key string, n int, what string) int {
	if err != nil {
		fmt.Fprintf(stderr, "kioskd queue: %v\n", err)
		return 1
	}
	if fl.json {
		return printJSON(stdout, stderr, map[string]int{key: n})
	}
	fmt.Fprintf(stdout, "%d %s\n", n, what)
	return 0
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "kioskd queue: %v\n", err)
		return 1
	}
	return 0
}

func flush(tw *tabwriter.Writer, stderr io.Writer) int {
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "kioskd queue: %v\n", err)
		return 1
	}
	return 0
}

// clipLine keeps a table cell on one line and of bounded width.
func clipLine(s string, n int) string {
	r := []rune(strings.Join(strings.Fields(s), " "))
	if len(r) > n {
		return string(r[:n-3]) + "..."
	}
	return string(r)
}

// openServiceQueue opens the service's queue, making the per-device key at
// first start. fatal marks the errors that must stop kioskd: a wrong key,
// a file from a newer kioskd, a link in place of the file. Running on would
// quietly stop keeping the captures an operator expects kept. Any other
// failure (a full or read-only disk) costs only the queue: live decisions
// go on without it.
func openServiceQueue(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (q *queue.Queue, fatal bool, err error) {
	if qc := &cfg.Queue; qc.Encrypt && qc.Key == "" && qc.GeneratedKey != "" {
		key, err := queue.CreateKey(qc.GeneratedKey)
		if err != nil {
			return nil, false, err
		}
		qc.UseGeneratedKey(key)
		log.Info("queue encryption key", "source", qc.KeySource)
	}
	q, err = queue.Open(cfg.Queue, log, reg)
	fatal = errors.Is(err, queue.ErrKeyMismatch) || errors.Is(err, queue.ErrFormat) || errors.Is(err, queue.ErrUnsafePath)
	return q, fatal, err
}
