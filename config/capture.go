package config

import "time"

// Capture is face detection, quality and frame selection.
type Capture struct {
	Cascade     string `yaml:"cascade"`
	EyesCascade string `yaml:"eyes_cascade"` // empty: no eye check
	DetectWidth int    `yaml:"detect_width"` // 0: derived from min_face_px
	MinFacePx   int    `yaml:"min_face_px"`
	// MaxFaceFraction rejects faces taller than this share of the frame ("step back").
	MaxFaceFraction float64 `yaml:"max_face_fraction"`
	MaxCenterOffset float64 `yaml:"max_center_offset"` // share of frame size
	MinSharpness    float64 `yaml:"min_sharpness"`
	MinBrightness   float64 `yaml:"min_brightness"`
	MaxBrightness   float64 `yaml:"max_brightness"`
	MinContrast     float64 `yaml:"min_contrast"`
	LargestFace     bool    `yaml:"largest_face"` // several faces: take the largest instead of rejecting
	MinEyes         int     `yaml:"min_eyes"`     // with eyes_cascade: eyes required in the upper half of the face

	// ChangeThreshold is the mean absolute difference (grey levels) of a
	// small thumbnail below which an empty scene counts as unchanged and the
	// cascade is skipped. 0 runs the cascade on every frame.
	ChangeThreshold float64 `yaml:"change_threshold"`
	// FullSearchEvery is how often (in frames) a whole-frame search runs
	// while a face is tracked in a region around its last position.
	FullSearchEvery int `yaml:"full_search_every"`
	// AbsentFrames is how many frames without a face end a presence.
	AbsentFrames int `yaml:"absent_frames"`

	PresenceFrames int           `yaml:"presence_frames"`
	Window         time.Duration `yaml:"window"`
	Cooldown       time.Duration `yaml:"cooldown"`
	// The brute-force guard: MaxFailures FAIL answers that say "not a match"
	// or "not live" within FailureWindow lock the device for Lockout. Passes,
	// errors, offline and guidance failures (mask, lenses) never count.
	MaxFailures   int           `yaml:"max_failures"`
	FailureWindow time.Duration `yaml:"failure_window"`
	Lockout       time.Duration `yaml:"lockout"`
	// OldMaxAttempts and OldAttemptWindow are the keys of an earlier cap
	// that counted every attempt; they are read into the new keys with a
	// warning that says what changed.
	OldMaxAttempts   *int           `yaml:"max_attempts"`
	OldAttemptWindow *time.Duration `yaml:"attempt_window"`

	JPEGQuality int     `yaml:"jpeg_quality"`
	MaxSide     int     `yaml:"max_side"`
	Crop        bool    `yaml:"crop"`
	CropMargin  float64 `yaml:"crop_margin"`
}

func (c *Capture) defaults() {
	c.Cascade = "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"
	c.MinFacePx = 120
	c.MaxFaceFraction = 0.9
	c.MaxCenterOffset = 0.3
	c.MinSharpness = 60
	c.MinBrightness = 50
	c.MaxBrightness = 210
	c.MinContrast = 20
	c.PresenceFrames = 3
	c.Window = 400 * time.Millisecond
	c.Cooldown = 3 * time.Second
	c.MaxFailures = 5
	c.FailureWindow = 3 * time.Minute
	c.Lockout = 5 * time.Minute
	c.MinEyes = 1
	c.ChangeThreshold = 2
	c.FullSearchEvery = 10
	c.AbsentFrames = 5
	c.JPEGQuality = 85
	c.MaxSide = 1280
	c.CropMargin = 1.0
}

func (c *Capture) validate(p *Problems) {
	if c.Cascade == "" {
		p.add("capture.cascade: required")
	}
	if c.MinFacePx < 24 || c.MinFacePx > 4000 {
		p.add("capture.min_face_px: %d is outside 24..4000", c.MinFacePx)
	}
	if c.DetectWidth != 0 && (c.DetectWidth < 80 || c.DetectWidth > 4000) {
		p.add("capture.detect_width: %d is outside 80..4000 (or 0 for automatic)", c.DetectWidth)
	}
	if c.MaxFaceFraction <= 0 || c.MaxFaceFraction > 1 {
		p.add("capture.max_face_fraction: %g is outside (0, 1]", c.MaxFaceFraction)
	}
	if c.MaxCenterOffset <= 0 || c.MaxCenterOffset > 1 {
		p.add("capture.max_center_offset: %g is outside (0, 1]", c.MaxCenterOffset)
	}
	if c.MinBrightness < 0 || c.MaxBrightness > 255 || c.MinBrightness >= c.MaxBrightness {
		p.add("capture.min_brightness/max_brightness: want 0 <= min < max <= 255, got %g and %g", c.MinBrightness, c.MaxBrightness)
	}
	if c.MinSharpness < 0 || c.MinContrast < 0 {
		p.add("capture.min_sharpness and capture.min_contrast: must not be negative")
	}
	if c.MinEyes < 0 || c.MinEyes > 2 {
		p.add("capture.min_eyes: %d is outside 0..2", c.MinEyes)
	}
	if c.ChangeThreshold < 0 || c.ChangeThreshold > 255 {
		p.add("capture.change_threshold: %g is outside 0..255", c.ChangeThreshold)
	}
	if c.FullSearchEvery < 1 || c.FullSearchEvery > 1000 {
		p.add("capture.full_search_every: %d is outside 1..1000", c.FullSearchEvery)
	}
	if c.AbsentFrames < 1 || c.AbsentFrames > 1000 {
		p.add("capture.absent_frames: %d is outside 1..1000", c.AbsentFrames)
	}
	if c.PresenceFrames < 1 || c.PresenceFrames > 100 {
		p.add("capture.presence_frames: %d is outside 1..100", c.PresenceFrames)
	}
	nonNegative(p, "capture.window", c.Window)
	nonNegative(p, "capture.cooldown", c.Cooldown)
	if c.MaxFailures < 0 {
		p.add("capture.max_failures: must not be negative (0 means no cap)")
	}
	nonNegative(p, "capture.failure_window", c.FailureWindow)
	nonNegative(p, "capture.lockout", c.Lockout)
	if c.JPEGQuality < 1 || c.JPEGQuality > 100 {
		p.add("capture.jpeg_quality: %d is outside 1..100", c.JPEGQuality)
	}
	if c.MaxSide != 0 && (c.MaxSide < 1000 || c.MaxSide > 8192) {
		p.add("capture.max_side: %d is outside 1000..8192 (Incode asks for at least 1000 px on one side; 0 keeps the camera size)", c.MaxSide)
	}
	if c.CropMargin < 0 || c.CropMargin > 10 {
		p.add("capture.crop_margin: %g is outside 0..10", c.CropMargin)
	}
}

// renamed moves the keys of the earlier attempt cap to the brute-force
// guard's and says what they now mean.
func (c *Capture) renamed(warn func(string)) {
	if c.OldMaxAttempts != nil {
		c.MaxFailures = *c.OldMaxAttempts
		c.OldMaxAttempts = nil
		warn("capture.max_attempts: renamed capture.max_failures, and it now counts only FAIL answers that say not a match or not live (faceMatchFailed, spoofAttempt); passes, errors, offline attempts and mask or lenses answers never count. The value is used as max_failures; rename the key")
	}
	if c.OldAttemptWindow != nil {
		c.FailureWindow = *c.OldAttemptWindow
		c.OldAttemptWindow = nil
		warn("capture.attempt_window: renamed capture.failure_window (the window in which counted failures add up); after max_failures the device is locked for capture.lockout, however the window moves. The value is used as failure_window; rename the key")
	}
}
