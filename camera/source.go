package camera

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gocv.io/x/gocv"
)

// kind is what a configured source string names.
type kind int

const (
	kindDevice kind = iota // V4L2 index or /dev/videoN
	kindURL                // rtsp://, http:// ... through FFmpeg
	kindGst                // "gst:" pipeline
	kindFile               // a video file
	kindFolder             // a folder of images
)

func (k kind) String() string {
	return [...]string{"device", "url", "gstreamer", "file", "folder"}[k]
}

// live sources keep producing frames whether or not they are read.
func (k kind) live() bool { return k == kindDevice || k == kindURL || k == kindGst }

// file sources end; they can loop and be paced.
func (k kind) file() bool { return k == kindFile || k == kindFolder }

func (k kind) backend() string {
	switch k {
	case kindDevice:
		return "v4l2"
	case kindURL:
		return "ffmpeg"
	case kindGst:
		return "gstreamer"
	}
	return "any"
}

// classify reads the configured source string.
func classify(src string) (kind, string, error) {
	src = strings.TrimSpace(src)
	switch {
	case src == "":
		return 0, "", errors.New("camera: empty source")
	case strings.HasPrefix(src, "gst:"):
		p := strings.TrimSpace(strings.TrimPrefix(src, "gst:"))
		if p == "" {
			return 0, "", errors.New(`camera: source "gst:" names no pipeline`)
		}
		return kindGst, p, nil
	case strings.Contains(src, "://"):
		u, err := url.Parse(src)
		if err != nil || u.Host == "" {
			return 0, "", fmt.Errorf("camera: source %q is not a valid URL", redact(src))
		}
		return kindURL, src, nil
	case isIndex(src) || strings.HasPrefix(src, "/dev/video"):
		return kindDevice, src, nil
	}
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		return kindFolder, src, nil
	}
	return kindFile, src, nil
}

func isIndex(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n < 64
}

// precheck catches a file or folder that can never work, so that a typo in
// the configuration is an error at start and not an endless reconnect.
func precheck(k kind, spec string) error {
	switch k {
	case kindFile:
		fi, err := os.Stat(spec)
		if err != nil {
			return fmt.Errorf("camera: source file: %w", err)
		}
		// A named pipe is a stream another program writes (e.g. ffmpeg
		// remuxing a camera OpenCV cannot open itself).
		if !fi.Mode().IsRegular() && fi.Mode()&os.ModeNamedPipe == 0 {
			return fmt.Errorf("camera: source %s is not a regular file or a named pipe", spec)
		}
	case kindFolder:
		files, err := listImages(spec)
		if err != nil {
			return fmt.Errorf("camera: source folder: %w", err)
		}
		if len(files) == 0 {
			return fmt.Errorf("camera: source folder %s has no images (%s)", spec, strings.Join(imageExts, " "))
		}
	}
	return nil
}

// redact hides a password in a URL, so that logs and errors never carry it.
func redact(src string) string {
	if !strings.Contains(src, "://") {
		return src
	}
	u, err := url.Parse(src)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// ffmpegEnv is how OpenCV takes FFmpeg options; gocv v0.31 has no other way.
const ffmpegEnv = "OPENCV_FFMPEG_CAPTURE_OPTIONS"

// ffmpegOptions are the FFmpeg demuxer options OpenCV passes on open, in
// its OPENCV_FFMPEG_CAPTURE_OPTIONS syntax. timeout and rw_timeout are in
// microseconds; without them a dead RTSP server blocks a read for 30 s.
func (s *Source) ffmpegOptions() string {
	us := strconv.FormatInt(s.cfg.NetworkTimeout.Microseconds(), 10)
	opts := []string{"timeout;" + us, "rw_timeout;" + us}
	if strings.HasPrefix(strings.ToLower(s.spec), "rtsp") {
		opts = append([]string{"rtsp_transport;" + s.cfg.RTSPTransport}, opts...)
	}
	return strings.Join(opts, "|")
}

// openOpenCV opens spec with the backend its kind names explicitly, so that
// OpenCV does not try every backend in turn on a device that is absent.
func (s *Source) openOpenCV(spec string) (Device, error) {
	switch s.kind {
	case kindFolder:
		return openFolder(spec, s.cfg.MaxPixels, s.skipImage)
	case kindDevice:
		if isIndex(spec) {
			n, _ := strconv.Atoi(spec)
			return s.checked(spec)(gocv.VideoCaptureDeviceWithAPI(n, gocv.VideoCaptureV4L2))
		}
		return s.checked(spec)(gocv.VideoCaptureFileWithAPI(spec, gocv.VideoCaptureV4L2))
	case kindURL:
		if s.ffmpegEnv != "" {
			if err := os.Setenv(ffmpegEnv, s.ffmpegEnv); err != nil {
				return nil, fmt.Errorf("set %s: %w", ffmpegEnv, err)
			}
		}
		return s.checked(spec)(gocv.VideoCaptureFileWithAPI(spec, gocv.VideoCaptureFFmpeg))
	case kindGst:
		return s.checked(spec)(gocv.VideoCaptureFileWithAPI(spec, gocv.VideoCaptureGstreamer))
	}
	return s.checked(spec)(gocv.VideoCaptureFileWithAPI(spec, gocv.VideoCaptureAny))
}

// checked turns gocv's half-opened capture into an error that says why the
// source did not open, naming no URL: gocv's message includes the whole URL
// with its password.
func (s *Source) checked(spec string) func(vc *gocv.VideoCapture, err error) (Device, error) {
	return func(vc *gocv.VideoCapture, err error) (Device, error) {
		if err != nil || !vc.IsOpened() {
			vc.Close()
			return nil, fmt.Errorf("OpenCV could not open the source: %s", diagnose(s.kind, spec))
		}
		return vc, nil
	}
}

func (s *Source) skipImage(path string, err error) {
	s.m.readErrors.Inc()
	reason := RejectUndecodable
	if ie, ok := errors.AsType[*ImageError](err); ok {
		reason = ie.Reason
	}
	s.m.rejected.WithLabelValues(reason).Inc()
	s.log.Warn("camera: skipping an unreadable image", "file", filepath.Base(path), "err", err)
}
