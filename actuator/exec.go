package actuator

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kioskd/kioskd/config"
)

// execPath is the only PATH a hook gets: it inherits nothing else from
// kioskd's environment, which may hold the API key.
const execPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// execDriver runs a program (never a shell) for each activation.
type execDriver struct {
	argv    []string
	timeout time.Duration
}

func newExecDriver(o config.Output) *execDriver {
	return &execDriver{argv: append([]string(nil), o.Command...), timeout: o.Timeout}
}

func (d *execDriver) fire(parent context.Context, n notice) error {
	ctx, cancel := context.WithTimeout(parent, d.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.argv[0], d.argv[1:]...)
	cmd.Env = []string{
		execPath,
		"RESULT=" + envValue(n.Result),
		"REASON=" + envValue(n.Reason),
		"SOURCE=" + envValue(n.Source),
		"AUTHENTICATION_ID=" + envValue(n.AuthenticationID),
		"ROLE=" + n.Role,
		"OUTPUT=" + envValue(n.Output),
		"STATE=" + n.State,
		"PULSE_MS=" + strconv.FormatInt(n.Pulse.Milliseconds(), 10),
	}
	cmd.Dir = "/"
	var out limitedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// Its own process group, so that a timeout also kills what the hook
	// started instead of leaving it holding the output pipe.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	switch {
	case err == nil:
		return nil
	case parent.Err() != nil:
		return fmt.Errorf("exec %s: %w", d.argv[0], parent.Err())
	case ctx.Err() != nil:
		return fmt.Errorf("exec %s: timed out after %s", d.argv[0], d.timeout)
	}
	if msg := out.tail(); msg != "" {
		return fmt.Errorf("exec %s: %w: %s", d.argv[0], err, msg)
	}
	return fmt.Errorf("exec %s: %w", d.argv[0], err)
}

// envValue drops NUL, the one byte an environment value cannot hold.
func envValue(s string) string { return strings.ReplaceAll(s, "\x00", "") }

// limitedBuffer keeps the last bytes a hook printed, for its error message.
type limitedBuffer struct{ b []byte }

const hookOutputLimit = 512

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > hookOutputLimit {
		l.b = l.b[len(l.b)-hookOutputLimit:]
	}
	return len(p), nil
}

func (l *limitedBuffer) tail() string {
	s := bytes.ToValidUTF8(bytes.TrimSpace(l.b), nil)
	return strings.Join(strings.Fields(string(s)), " ")
}
