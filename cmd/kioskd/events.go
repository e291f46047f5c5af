package main

import (
	"bufio"
	"context"
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

	"github.com/kioskd/kioskd/actuator"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/events"
)

const eventsUsage = `usage: kioskd events <command> --config FILE [flags]

commands:
  list    [--since T] [--until T] [--format table|jsonl|csv]   events, oldest first (default: a table)
  export  [--since T] [--until T] [--format jsonl|csv]         events for another system (default: jsonl)

T is a time (2026-03-01T08:00:00Z, 2026-03-01) or an age (24h: since a day ago).
The log is read while kioskd runs, in short read-only chunks.
`

func runEvents(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") || args[0] == "help" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help") {
			fmt.Fprint(stdout, eventsUsage)
			return 0
		}
		fmt.Fprint(stderr, eventsUsage)
		return 2
	}
	sub, rest := args[0], args[1:]
	format := events.FormatJSONL
	switch sub {
	case "list":
		format = "table"
	case "export":
	default:
		fmt.Fprintf(stderr, "kioskd events: unknown command %q\n\n%s", sub, eventsUsage)
		return 2
	}
	var since, until string
	cfg, _, code := loadQueueConfig("events "+sub, rest, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&since, "since", "", "first time (RFC 3339, a date, or an age such as 24h)")
		fs.StringVar(&until, "until", "", "end time, exclusive (same forms)")
		fs.StringVar(&format, "format", format, "jsonl or csv (list: also table)")
	})
	if code != 0 {
		return code
	}
	from, err := parseWhen(since, now())
	if err != nil {
		fmt.Fprintf(stderr, "kioskd events: --since: %v\n", err)
		return 2
	}
	to, err := parseWhen(until, now())
	if err != nil {
		fmt.Fprintf(stderr, "kioskd events: --until: %v\n", err)
		return 2
	}
	path := cfg.EventsPath()
	if path == "" {
		fmt.Fprintln(stderr, "kioskd events: no event log configured (events.path or device.state_dir)")
		return 2
	}
	r, err := events.NewReader(path, 5*time.Second)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "kioskd events: no event log at %s yet (kioskd creates it when it starts)\n", path)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "kioskd events: %v\n", err)
		return 1
	}
	bw := bufio.NewWriter(stdout)
	var write func(events.Event) error
	var flush func() error
	if format == "table" && sub == "list" {
		tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tDOOR\tKIND\tRESULT\tREASON\tNAME\tAUTHENTICATION ID\tID")
		write = func(e events.Event) error {
			kind := string(e.Kind)
			if e.Deferred {
				kind += " (deferred)"
			}
			_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime),
				e.Door, kind, dash(e.Result), dash(e.Reason), dash(e.Name), dash(e.AuthenticationID), e.ID)
			return err
		}
		flush = tw.Flush
	} else {
		w, err := events.NewWriter(bw, format)
		if err != nil {
			fmt.Fprintf(stderr, "kioskd events: --format: %v\n", err)
			return 2
		}
		write, flush = w.Write, w.Close
	}
	if err := r.Each(from, to, write); err != nil {
		_ = bw.Flush()
		fmt.Fprintf(stderr, "kioskd events: %v\n", err)
		return 1
	}
	if err := flush(); err != nil {
		fmt.Fprintf(stderr, "kioskd events: %v\n", err)
		return 1
	}
	if err := bw.Flush(); err != nil {
		fmt.Fprintf(stderr, "kioskd events: %v\n", err)
		return 1
	}
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseWhen reads a time bound: RFC 3339, a date (local midnight), or an
// age counted back from now. Empty is an open end.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (2026-03-01T08:00:00Z), a date (2026-03-01) or an age (24h)", s)
}

// openEvents opens the event log and its sinks for the daemon. A log that
// cannot be opened does not stop the door: it is logged and shown by
// kioskd_events_up.
func openEvents(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*events.Log, []*events.Forwarder) {
	up := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kioskd_events_up",
		Help: "1 when the access-event log is open; 0 when it could not be opened (decisions continue unrecorded).",
	})
	reg.MustRegister(up)
	l, err := events.Open(cfg.EventsPath(), cfg.Events, log, reg)
	if err != nil {
		log.Error("event log unavailable: decisions continue, but are not recorded as access events", "path", cfg.EventsPath(), "err", err)
		return nil, nil
	}
	up.Set(1)
	fw, err := events.NewForwarders(l, cfg.Events, cfg.Device.SourceID, log, reg)
	if err != nil {
		log.Error("event sinks unavailable: events are kept and sent once this is fixed", "err", err)
		return l, nil
	}
	return l, fw
}

// appendEvent writes ev to the log, if there is one; a failure is logged
// (and counted by the log) but never stops what happened at the door.
func appendEvent(l *events.Log, log *slog.Logger, ev events.Event) {
	if l == nil {
		return
	}
	// The event must be kept even while kioskd is stopping.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.Append(ctx, ev); err != nil {
		log.Error("access event not recorded", "kind", string(ev.Kind), "err", err)
	}
}

// doorEvent turns what the door inputs saw into an access event.
func doorEvent(source string, d actuator.DoorEvent) events.Event {
	ev := events.Event{Time: d.Time, Door: source, Kind: events.Kind("door." + string(d.Kind)), Reason: d.Input}
	if d.Open > 0 {
		ev.LatencyMS = d.Open.Milliseconds()
	}
	return ev
}
