package main

import (
	"log/slog"
	"reflect"

	"github.com/kioskd/kioskd/agent"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/logging"
)

// messageSetter is the display's live-reload hook.
type messageSetter interface {
	SetMessages(language string, overrides map[string]string) error
}

// credentialsReloader is the credentials resolver's live-reload hook.
type credentialsReloader interface {
	Reload(cfg config.Credentials) error
}

// reload applies what can change without a restart — capture thresholds,
// display messages, the log level, the credentials file — and says what it
// could not apply.
func reload(log *slog.Logger, lvl *slog.LevelVar, old *config.Config, ag *agent.Agent, disp messageSetter, creds credentialsReloader) *config.Config {
	fresh, err := config.Load(old.Path, nil)
	if err != nil {
		log.Error("reload: configuration not applied", "err", err)
		return old
	}
	applied := []string{}
	// The credentials file is read again even when its name did not change:
	// a SIGHUP is how an integrator says its rows changed.
	if creds != nil && (fresh.Credentials.File != "" || !reflect.DeepEqual(fresh.Credentials, old.Credentials)) {
		if err := creds.Reload(fresh.Credentials); err != nil {
			log.Error("reload: credentials not applied; the previous ones stay in force", "err", err)
			fresh.Credentials = old.Credentials
		} else {
			applied = append(applied, "credentials")
		}
	}
	if fresh.Log.Level != old.Log.Level {
		lvl.Set(logging.ParseLevel(fresh.Log.Level))
		applied = append(applied, "log.level")
	}
	if !reflect.DeepEqual(fresh.Capture, old.Capture) {
		if err := ag.ReconfigureCapture(fresh.Capture); err != nil {
			log.Error("reload: capture settings not applied", "err", err)
			fresh.Capture = old.Capture
		} else {
			applied = append(applied, "capture")
		}
	}
	dispOld, dispNew := old.Display, fresh.Display
	if disp != nil && (dispOld.Language != dispNew.Language || !reflect.DeepEqual(dispOld.Messages, dispNew.Messages)) {
		if err := disp.SetMessages(dispNew.Language, dispNew.Messages); err != nil {
			log.Error("reload: display messages not applied", "err", err)
		} else {
			applied = append(applied, "display.messages")
		}
		dispOld.Language, dispOld.Messages = dispNew.Language, dispNew.Messages
	}
	dispOld.Messages, dispNew.Messages = nil, nil
	dispOld.Language, dispNew.Language = "", ""
	var restart []string
	if !reflect.DeepEqual(dispOld, dispNew) {
		restart = append(restart, "display")
	}
	sections := []struct {
		name     string
		old, new any
	}{
		{"device", old.Device, fresh.Device},
		{"incode", old.Incode, fresh.Incode},
		{"camera", old.Camera, fresh.Camera},
		{"queue", old.Queue, fresh.Queue},
		{"actuator", old.Actuator, fresh.Actuator},
		{"metrics", old.Metrics, fresh.Metrics},
		{"panel", old.Panel, fresh.Panel},
		{"log.format", old.Log.Format, fresh.Log.Format},
	}
	for _, s := range sections {
		if !reflect.DeepEqual(s.old, s.new) {
			restart = append(restart, s.name)
		}
	}
	if len(restart) > 0 {
		log.Warn("reload: these changes need a restart (systemctl restart kioskd) and were not applied", "sections", restart)
	}
	log.Info("reloaded", "applied", applied)
	// Keep the running values of what was not applied, so that a later
	// reload compares against what is really in force.
	fresh.Device, fresh.Incode, fresh.Camera, fresh.Queue = old.Device, old.Incode, old.Camera, old.Queue
	fresh.Actuator, fresh.Metrics, fresh.Log.Format = old.Actuator, old.Metrics, old.Log.Format
	fresh.Panel = old.Panel
	if disp == nil {
		fresh.Display = old.Display
	} else {
		d := old.Display
		d.Language, d.Messages = fresh.Display.Language, fresh.Display.Messages
		fresh.Display = d
	}
	return fresh
}
