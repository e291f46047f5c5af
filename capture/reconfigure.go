package capture

import (
	"errors"
	"fmt"
	"image"
	"log/slog"
	"time"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/config"
)

// parts are what a Selector builds from its configuration: the cascades
// with the detector, the scorer's thresholds and the encoder. A live reload
// replaces them whole, so that no frame is judged by a mix of settings.
type parts struct {
	det       *detector
	sc        *scorer
	enc       *encoder
	eyes      *gocv.CascadeClassifier
	win       image.Point
	minDetect int
}

func checkConfig(cfg config.Capture) error {
	if cfg.MinFacePx <= 0 || cfg.PresenceFrames <= 0 || cfg.AbsentFrames <= 0 || cfg.FullSearchEvery <= 0 || cfg.JPEGQuality <= 0 {
		return errors.New("capture: configuration without defaults (use config.Default or config.Load)")
	}
	return nil
}

func newParts(cfg config.Capture, log *slog.Logger, now func() time.Time) (*parts, error) {
	face, win, err := loadCascade(cfg.Cascade)
	if err != nil {
		return nil, fmt.Errorf("capture: face cascade: %w", err)
	}
	p := &parts{win: win}
	if cfg.EyesCascade != "" {
		eyes, ewin, err := loadCascade(cfg.EyesCascade)
		if err != nil {
			face.Close()
			return nil, fmt.Errorf("capture: eyes cascade: %w", err)
		}
		p.eyes = &eyes
		p.sc = newScorer(cfg, p.eyes, ewin)
	} else {
		p.sc = newScorer(cfg, nil, image.Point{})
	}
	p.minDetect = max(int(float64(cfg.MinFacePx)*detectMargin), win.X)
	p.det = newDetector(face, win, p.minDetect, cfg.DetectWidth)
	warned := map[int]bool{}
	p.det.warnSmall = func(effective int) {
		if !warned[effective] {
			warned[effective] = true
			log.Warn("capture: detect_width too small for min_face_px; faces below the effective minimum are not found",
				"detect_width", cfg.DetectWidth, "min_face_px", cfg.MinFacePx, "effective_min_face_px", effective, "cascade_window_px", win.X)
		}
	}
	p.enc = &encoder{quality: cfg.JPEGQuality, maxSide: cfg.MaxSide, crop: cfg.Crop, margin: cfg.CropMargin, now: now, resized: gocv.NewMat()}
	return p, nil
}

func (s *Selector) setParts(p *parts) {
	s.det, s.sc, s.enc, s.eyes = p.det, p.sc, p.enc, p.eyes
}

func (s *Selector) closeParts() {
	if s.det != nil {
		s.det.Close()
		s.det = nil
	}
	if s.sc != nil {
		s.sc.Close()
		s.sc = nil
	}
	if s.enc != nil {
		s.enc.Close()
		s.enc = nil
	}
	if s.eyes != nil {
		s.eyes.Close()
		s.eyes = nil
	}
}

// Reconfigure applies new capture settings to a running selector (a
// SIGHUP reload): thresholds, cascades, timing, the attempt cap and the
// upload encoding. Like Process it belongs to the frame-loop goroutine. On
// error nothing changes. A presence being collected starts over, since its
// frames were judged by the old thresholds; a cooldown, a lockout and the
// attempt history carry over. The attempt store stays the one the
// selector was built with.
func (s *Selector) Reconfigure(cfg config.Capture) error {
	if s.det == nil {
		return errors.New("capture: selector closed")
	}
	if err := checkConfig(cfg); err != nil {
		return err
	}
	p, err := newParts(cfg, s.log, s.now)
	if err != nil {
		return err
	}
	s.closeParts()
	s.setParts(p)
	s.cfg = cfg
	s.guard.configure(cfg)
	if s.state == stIdle || s.state == stPresent {
		s.resetPresence()
	}
	s.log.Info("capture: reconfigured", "cascade", cfg.Cascade, "window_px", p.win.X, "min_face_px", cfg.MinFacePx,
		"detect_min_face_px", p.minDetect, "detect_width", cfg.DetectWidth, "eyes", cfg.EyesCascade != "")
	return nil
}
