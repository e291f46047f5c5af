package config

import "time"

// Camera is the frame source.
type Camera struct {
	// Source is an index ("0"), /dev/videoN, rtsp:// or http:// URL,
	// a video file, an image folder, or "gst:" followed by a pipeline.
	Source        string        `yaml:"source"`
	Width         int           `yaml:"width"`
	Height        int           `yaml:"height"`
	FPS           float64       `yaml:"fps"`
	BufferSize    int           `yaml:"buffer_size"`
	Loop          bool          `yaml:"loop"`     // file/folder: loop, or end the run at the end
	Realtime      bool          `yaml:"realtime"` // file/folder: pace reads at fps; a late loop skips to the frame due, as a camera does
	MaxFrameAge   time.Duration `yaml:"max_frame_age"`
	StallTimeout  time.Duration `yaml:"stall_timeout"` // no frame for this long: reopen
	ReconnectMin  time.Duration `yaml:"reconnect_min"`
	ReconnectMax  time.Duration `yaml:"reconnect_max"`
	RTSPTransport string        `yaml:"rtsp_transport"` // tcp | udp
	// NetworkTimeout bounds how long FFmpeg waits on a network stream to
	// open or deliver data before the read fails and the source is reopened.
	NetworkTimeout time.Duration `yaml:"network_timeout"`
	// FourCC asks a V4L2 camera for a pixel format, e.g. MJPG: many USB
	// cameras only reach 720p at 30 fps compressed. Empty: the driver's choice.
	FourCC string `yaml:"fourcc"`
	// MaxPixels refuses a picture or frame larger than this (width x
	// height), read from its header before it is decoded: about 4K by
	// default, since a 20000x20000 picture costs gigabytes once decoded.
	MaxPixels int `yaml:"max_pixels"`
}

func (c *Camera) defaults() {
	c.Source = "/dev/video0"
	c.Width = 1280
	c.Height = 720
	c.FPS = 30
	c.BufferSize = 1
	c.MaxFrameAge = 500 * time.Millisecond
	c.StallTimeout = 5 * time.Second
	c.ReconnectMin = 500 * time.Millisecond
	c.ReconnectMax = 30 * time.Second
	c.RTSPTransport = "tcp"
	c.NetworkTimeout = 5 * time.Second
	c.MaxPixels = 3840 * 2160
}

func (c *Camera) validate(p *Problems) {
	if c.Source == "" {
		p.add("camera.source: required")
	}
	if c.Width < 0 || c.Width > 8192 || c.Height < 0 || c.Height > 8192 {
		p.add("camera.width/height: %dx%d is outside 0..8192", c.Width, c.Height)
	}
	if c.FPS <= 0 || c.FPS > 240 {
		p.add("camera.fps: %g is outside (0, 240]", c.FPS)
	}
	if c.BufferSize < 0 || c.BufferSize > 64 {
		p.add("camera.buffer_size: %d is outside 0..64", c.BufferSize)
	}
	if c.MaxPixels < 320*240 || c.MaxPixels > 8192*8192 {
		p.add("camera.max_pixels: %d is outside %d..%d", c.MaxPixels, 320*240, 8192*8192)
	}
	if c.Width*c.Height > c.MaxPixels {
		p.add("camera.max_pixels: %d is less than the configured frame, %dx%d", c.MaxPixels, c.Width, c.Height)
	}
	positive(p, "camera.max_frame_age", c.MaxFrameAge)
	positive(p, "camera.stall_timeout", c.StallTimeout)
	positive(p, "camera.reconnect_min", c.ReconnectMin)
	positive(p, "camera.reconnect_max", c.ReconnectMax)
	if c.RTSPTransport != "tcp" && c.RTSPTransport != "udp" {
		p.add("camera.rtsp_transport: %q is not tcp or udp", c.RTSPTransport)
	}
	positive(p, "camera.network_timeout", c.NetworkTimeout)
	if c.FourCC != "" && len(c.FourCC) != 4 {
		p.add("camera.fourcc: %q is not four characters", c.FourCC)
	}
}
