package actuator

import "log/slog"

// logDriver is an output that only logs, for dry runs and tests.
type logDriver struct {
	log  *slog.Logger
	name string
	role string
}

func (d *logDriver) set(on bool, ev Event) error {
	state := "off"
	if on {
		state = "on"
	}
	attrs := []any{"output", d.name, "role", d.role, "state", state}
	if on && ev.Result != "" {
		attrs = append(attrs, "result", ev.Result, "reason", ev.Reason)
	}
	d.log.Info("actuator output", attrs...)
	return nil
}

func (d *logDriver) close() error { return nil }
