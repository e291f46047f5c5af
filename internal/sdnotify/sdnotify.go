// Package sdnotify speaks systemd's notify protocol for kioskd: READY=1,
// STATUS=, STOPPING=1 and the watchdog pings. Every method does nothing
// when kioskd is not run by systemd ($NOTIFY_SOCKET unset).
package sdnotify

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier speaks systemd's notify protocol. All methods do nothing when
// kioskd is not run by systemd.
type Notifier struct {
	log *slog.Logger
}

// New returns a notifier using $NOTIFY_SOCKET.
func New(log *slog.Logger) *Notifier { return &Notifier{log: log} }

func (n *Notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Debug("sd_notify failed", "err", err)
	}
}

// Ready sends READY=1 and a status line.
func (n *Notifier) Ready(status string) { n.send(daemon.SdNotifyReady + "\nSTATUS=" + status) }

// Status sends a STATUS= line.
func (n *Notifier) Status(status string) { n.send("STATUS=" + status) }

// Stopping sends STOPPING=1.
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping + "\nSTATUS=stopping") }

// Watchdog pings systemd at half its interval while healthy() is true, so a
// frame loop stuck inside a camera read gets the process restarted.
func (n *Notifier) Watchdog(ctx context.Context, healthy func(maxAge time.Duration) bool) error {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return nil
	}
	n.log.Info("systemd watchdog enabled", "interval", interval.String())
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if healthy(interval) {
				n.send(daemon.SdNotifyWatchdog)
			} else {
				n.log.Warn("frame loop is not making progress: withholding the watchdog ping")
			}
		}
	}
}
