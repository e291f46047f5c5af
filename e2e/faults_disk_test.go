package e2e

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/queue"
)

// diskCase is one way the queue's storage fails under a running kioskd.
type diskCase struct {
	name, fault, expected string
	// prepare sets up the fault and returns the config and the command
	// that runs kioskd (a wrapper such as prlimit, or nil).
	prepare func(t *testing.T, c *fcfg) (wrapper []string)
	queueUp float64 // kioskd_queue_up
	// errRE is the error kioskd must log about its storage.
	errRE *regexp.Regexp
	// readyz is the expected /readyz status.
	readyz int
}

// TestDiskFaults breaks the queue's storage three ways. Each time kioskd
// says so clearly (an error line and a metric), an offline capture is
// honestly reported as not queued, live decisions keep opening the door,
// and the queue file is left intact.
func TestDiskFaults(t *testing.T) {
	cases := []diskCase{
		{
			name:     "queue filesystem full",
			fault:    "RLIMIT_FSIZE (prlimit --fsize) at the queue file's size: the file cannot grow",
			expected: "\"capture not queued\" error naming the cause, queued=false, kioskd_queue_errors_total{op=enqueue} and kioskd_decision_enqueue_errors_total move; live PASS still opens the door; file intact",
			prepare: func(t *testing.T, c *fcfg) []string {
				size := precreateQueue(t, c)
				return []string{"prlimit", "--fsize=" + size + ":" + size, "--"}
			},
			queueUp: 1,
			errRE:   regexp.MustCompile(`"msg":"capture not queued".*file too large`),
			readyz:  200,
		},
		{
			name:     "queue file read-only",
			fault:    "queue file mode 0400 and kioskd without CAP_DAC_OVERRIDE (setpriv)",
			expected: "\"queue unavailable\" error at start, kioskd_queue_up 0, /readyz 503 naming the queue; live PASS still opens the door; the file is not touched",
			prepare: func(t *testing.T, c *fcfg) []string {
				precreateQueue(t, c)
				if err := os.Chmod(c.QueuePath, 0o400); err != nil {
					t.Fatal(err)
				}
				if os.Geteuid() != 0 {
					return nil
				}
				if _, err := exec.LookPath("setpriv"); err != nil {
					t.Skip("root without setpriv: a read-only file is writable anyway")
				}
				return []string{"setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"}
			},
			errRE:  regexp.MustCompile(`"msg":"queue unavailable: live decisions continue.*permission denied`),
			readyz: 503,
		},
		{
			name:     "state directory missing",
			fault:    "device.state_dir (and the queue under it) below a path that is a file: it cannot be created",
			expected: "warning about the state directory, \"queue unavailable\" error, kioskd_queue_up 0, /readyz 503; live PASS still opens the door",
			prepare: func(t *testing.T, c *fcfg) []string {
				file := filepath.Join(t.TempDir(), "not-a-dir")
				if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				c.State = filepath.Join(file, "state")
				c.QueuePath = filepath.Join(c.State, "queue.db")
				return nil
			},
			errRE:  regexp.MustCompile(`"msg":"queue unavailable: live decisions continue.*not a directory`),
			readyz: 503,
		},
	}
	for i, dc := range cases {
		t.Run(dc.name, func(t *testing.T) {
			t.Parallel()
			runDiskCase(t, i, dc)
		})
	}
}

// precreateQueue makes an empty queue file, as a first start of the
// service does (the queue commands never create one), and returns its size.
func precreateQueue(t *testing.T, c *fcfg) string {
	t.Helper()
	if c.State == "" {
		c.State = t.TempDir()
	}
	c.QueuePath = filepath.Join(c.State, "queue.db")
	qc := config.Default().Queue
	qc.Path, qc.Encrypt = c.QueuePath, false
	q, err := queue.Open(qc, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(c.QueuePath)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(fi.Size(), 10)
}

func runDiskCase(t *testing.T, order int, dc diskCase) {
	ob := observe(t, "disk", dc.name, dc.fault, dc.expected)
	ob.o.Order = order
	s := startSim(t, "--script", "http:503,http:503,http:503,http:503")
	hook := newDoorHook(t)
	c := fcfg{BaseURL: s.URL, Clip: relClip(t, loopClip), Loop: true, Outputs: hook.outputs()}
	wrapper := dc.prepare(t, &c)
	cfg := c.write(t)
	var before []byte
	if _, err := os.Stat(c.QueuePath); err == nil {
		before = readFile(t, c.QueuePath)
	}
	var k *proc
	if wrapper == nil {
		k = startKioskd(t, cfg)
	} else {
		k = startArgv(t, kioskdEnv(), append(wrapper, filepath.Join(binDir, "kioskd"), "run", "--config", cfg)...)
	}
	maddr := listenAddr(t, k, "metrics")
	scr := watchScreen(t, displayAddr(t, k))

	first := waitDecision(t, k, "the offline decision", 30*time.Second, live)
	if first["result"] != "OFFLINE" || first["queued"] != false {
		t.Errorf("first decision %v, want OFFLINE with queued=false", first)
	}
	errLine := k.waitLine(t, dc.errRE, 5*time.Second)
	ob.happened("logged: %s", errSummary(errLine))
	ob.happened("OFFLINE %s, queued=false", str(first, "reason"))
	waitDecision(t, k, "a live PASS without the queue", 30*time.Second, func(d map[string]any) bool {
		return live(d) && d["result"] == "PASS"
	})
	ob.happened("next person: live PASS, door opened")

	fams := scrape(t, maddr)
	checks := []metricWant{
		{"kioskd_queue_up", nil, dc.queueUp, dc.queueUp},
		{"kioskd_decision_enqueue_errors_total", nil, 1, -1},
	}
	if dc.queueUp == 1 {
		checks = append(checks, metricWant{"kioskd_queue_errors_total", []string{"op=enqueue"}, 1, -1},
			metricWant{"kioskd_queue_depth", nil, 0, 0})
	}
	for _, m := range checks {
		v := metricValue(fams, m.name, m.labels...)
		if v < m.min || (m.max >= 0 && v > m.max) {
			t.Errorf("%s%v = %v, want %v..%v", m.name, m.labels, v, m.min, m.max)
		}
	}
	ob.happened("kioskd_queue_up %v, kioskd_decision_enqueue_errors_total %v", metricValue(fams, "kioskd_queue_up"), metricValue(fams, "kioskd_decision_enqueue_errors_total"))
	code, body := getReadyz(t, maddr)
	if code != dc.readyz {
		t.Errorf("/readyz %d %s, want %d", code, body, dc.readyz)
	}
	if dc.readyz == 503 && !strings.Contains(body, "queue") {
		t.Errorf("/readyz does not name the queue: %s", body)
	}
	ob.happened("/readyz %d", code)
	if got := screenAfterFirstCheck(scr); got != "offline" {
		t.Errorf("screen after the offline attempt: %q", got)
	}
	k.stop(t)
	checkDoor(t, k, hook)

	if before != nil {
		after := readFile(t, c.QueuePath)
		if dc.queueUp == 0 && string(after) != string(before) {
			t.Errorf("the queue file kioskd could not open was changed")
		}
		matches, _ := filepath.Glob(c.QueuePath + ".corrupt-*")
		if len(matches) > 0 {
			t.Errorf("a storage error made kioskd move the queue file aside as damaged: %v", matches)
		}
		_ = os.Chmod(c.QueuePath, 0o600)
		checkBolt(t, c.QueuePath)
		st := queueStats(t, cfg)
		if st["depth"] != float64(0) {
			t.Errorf("queue stats after the run: %v", st)
		}
		ob.happened("queue file intact (bbolt check clean, not moved aside)")
	}
	ob.lost("the offline capture, reported as queued=false (no storage for it); no queued capture lost; live decisions unaffected")
}

func errSummary(line string) string {
	m := map[string]any{}
	for _, l := range logLines(line) {
		m = l
	}
	msg, _ := m["msg"].(string)
	err, _ := m["err"].(string)
	return strings.TrimSpace(msg + ": " + err)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func getReadyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// checkBolt runs bbolt's own consistency check on a queue file nobody holds.
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("bbolt open %s: %v", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []string
		for e := range tx.Check() {
			errs = append(errs, e.Error())
		}
		if len(errs) > 0 {
			t.Errorf("bbolt check %s: %s", path, strings.Join(errs, "; "))
		}
		return nil
	})
	if err != nil {
		t.Errorf("bbolt view: %v", err)
	}
}
