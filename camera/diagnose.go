package camera

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// probeTimeout bounds each step of finding out why a source did not open.
const probeTimeout = 2 * time.Second

// diagnose finds out why OpenCV could not open spec, which its API does not
// say: a device that is absent or not permitted, a network camera that
// refuses the connection, accepts it and never answers, or answers with an
// error. The result names no password.
func diagnose(k kind, spec string) string {
	switch k {
	case kindDevice:
		dev := spec
		if isIndex(spec) {
			dev = "/dev/video" + spec
		}
		return diagnoseDevice(dev)
	case kindURL:
		return diagnoseURL(spec)
	case kindGst:
		return "GStreamer could not start the pipeline (try it with gst-launch-1.0 to see why)"
	case kindFile:
		if _, err := os.Stat(spec); err != nil {
			return err.Error()
		}
		return "the file is not a video OpenCV can read"
	}
	return "unknown cause"
}

func diagnoseDevice(dev string) string {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return dev + " does not exist: is the camera plugged in?"
	case errors.Is(err, os.ErrPermission):
		return dev + ": permission denied: the service user must be in the video group"
	case err != nil:
		return dev + ": " + err.Error()
	}
	f.Close()
	return dev + " exists but is not a V4L2 capture device, or another program holds it"
}

func diagnoseURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "not a valid URL"
	}
	host := u.Host
	if u.Port() == "" {
		switch strings.ToLower(u.Scheme) {
		case "rtsp":
			host = net.JoinHostPort(u.Hostname(), "554")
		case "https":
			host = net.JoinHostPort(u.Hostname(), "443")
		default:
			host = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	conn, err := net.DialTimeout("tcp", host, probeTimeout)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Sprintf("no answer from %s within %s (host down, or a firewall drops the connection)", host, probeTimeout)
		}
		// The dial error names the address, never the URL's password.
		return fmt.Sprintf("cannot connect to %s: %v", host, errors.Unwrap(err))
	}
	defer conn.Close()
	if !strings.EqualFold(u.Scheme, "rtsp") {
		return fmt.Sprintf("%s accepts connections but the stream could not be opened (wrong path, credentials or format?)", host)
	}
	// Ask the RTSP server for its options, as any client starts: the
	// request line carries the URL without its credentials.
	clean := *u
	clean.User = nil
	_ = conn.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := fmt.Fprintf(conn, "OPTIONS %s RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: kioskd\r\n\r\n", clean.String()); err != nil {
		return fmt.Sprintf("%s accepted the connection, then: %v", host, errors.Unwrap(err))
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Sprintf("%s accepted the connection but sent no RTSP answer within %s (not an RTSP server, or it hangs)", host, probeTimeout)
	}
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "RTSP/") {
		return fmt.Sprintf("%s answered, but not in RTSP", host)
	}
	if len(line) > 80 {
		line = line[:80]
	}
	return fmt.Sprintf("the RTSP server at %s answers %q: the stream could not be opened (path, credentials or codec?)", host, oneLineASCII(line))
}

func oneLineASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
