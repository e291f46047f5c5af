package events_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/kioskd/kioskd/internal/promtest"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/events"
)

// broker is Debian's mosquitto on a loopback port, with persistence so
// that a durable subscriber's session survives a restart.
type broker struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func mosquittoPath(t *testing.T) string {
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/bin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	t.Fatal("mosquitto is missing: run scripts/install-deps.sh test")
	return ""
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	b := &broker{t: t, dir: t.TempDir(), port: port}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nlog_dest stderr\nlog_type all\nuser %s\n",
		port, b.dir, currentUser())
	if err := os.WriteFile(filepath.Join(b.dir, "mosquitto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

func (b *broker) url() string { return fmt.Sprintf("mqtt://127.0.0.1:%d", b.port) }

// start runs mosquitto and returns once it accepts connections, as its
// log says.
func (b *broker) start() {
	b.t.Helper()
	b.cmd = exec.Command(mosquittoPath(b.t), "-c", filepath.Join(b.dir, "mosquitto.conf"))
	// mosquitto buffers stdout but not stderr, where the log goes.
	out, err := b.cmd.StderrPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.done = make(chan struct{})
	ready := make(chan struct{})
	var logTail []string
	go func() {
		defer close(b.done)
		sc := bufio.NewScanner(out)
		r := false
		for sc.Scan() {
			if len(logTail) < 50 {
				logTail = append(logTail, sc.Text())
			}
			if !r && strings.Contains(sc.Text(), " running") {
				r = true
				close(ready)
			}
		}
		_ = b.cmd.Wait()
	}()
	select {
	case <-ready:
	case <-b.done:
		b.t.Fatalf("mosquitto exited: %s", strings.Join(logTail, "\n"))
	case <-time.After(15 * time.Second):
		b.t.Fatalf("mosquitto did not start: %s", strings.Join(logTail, "\n"))
	}
}

// stop ends mosquitto with SIGTERM, which saves its persistence file.
func (b *broker) stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	<-b.done
	b.cmd = nil
}

// subscribe connects a durable (clean session off) QoS 1 subscriber that
// records every event id it receives.
func subscribe(t *testing.T, url, topic string, got *received) mqtt.Client {
	t.Helper()
	handler := func(_ mqtt.Client, m mqtt.Message) {
		var e events.Event
		if err := json.Unmarshal(m.Payload(), &e); err == nil && e.ID != "" {
			got.add(e.ID)
		}
	}
	subscribed := make(chan struct{}, 1)
	o := mqtt.NewClientOptions().AddBroker(strings.Replace(url, "mqtt://", "tcp://", 1)).
		SetClientID("test-subscriber").SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
		SetDefaultPublishHandler(handler).
		SetOnConnectHandler(func(c mqtt.Client) {
			tok := c.Subscribe(topic, 1, handler)
			tok.Wait()
			select {
			case subscribed <- struct{}{}:
			default:
			}
		})
	c := mqtt.NewClient(o)
	c.Connect()
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber did not subscribe")
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// retained reads the retained message of topic with a fresh client.
func retained(t *testing.T, url, topic string) string {
	t.Helper()
	msg := make(chan string, 1)
	o := mqtt.NewClientOptions().AddBroker(strings.Replace(url, "mqtt://", "tcp://", 1)).SetClientID("test-retained")
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() {
			select {
			case msg <- string(m.Payload()):
			default:
			}
		}
	})
	select {
	case s := <-msg:
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("no retained message on %s", topic)
		return ""
	}
}

// Every event reaches a subscriber through a broker restart in the middle
// of the run; duplicates may happen (at least once) and are told apart by
// id. Availability is retained "online" while kioskd runs and "offline"
// after it stops.
func TestMQTTSinkThroughBrokerRestart(t *testing.T) {
	b := startBroker(t)
	got := newReceived()
	subscribe(t, b.url(), "kioskd/lobby-1/events", got)

	path := filepath.Join(t.TempDir(), "events.db")
	reg := prometheus.NewRegistry()
	l := openLog(t, path, testConfig(), reg)
	sc := sinkConfig("mqtt", b.url())
	s, err := events.NewMQTTSink(sc, "lobby-1", quiet())
	if err != nil {
		t.Fatal(err)
	}
	f, err := events.NewForwarder(l, s, sc, quiet(), reg)
	if err != nil {
		t.Fatal(err)
	}
	stop := runForwarder(t, f)

	ids := appendN(t, l, 20)
	got.waitFor(t, ids, 20*time.Second)
	if a := retained(t, b.url(), "kioskd/lobby-1/availability"); a != events.Online {
		t.Errorf("availability %q, want online", a)
	}

	b.stop()
	ids = append(ids, appendN(t, l, 20)...) // while the broker is down
	b.start()
	ids = append(ids, appendN(t, l, 20)...)
	got.waitFor(t, ids, 30*time.Second)
	waitCond(t, 10*time.Second, "the cursor to reach the last event", func() bool { return f.Pending() == 0 })
	t.Logf("%d events, %d duplicates", len(ids), got.duplicates())
	if v := promtest.Value(t, reg, "kioskd_events_sink_errors_total", "sink", "mqtt-0"); v < 1 {
		t.Errorf("sink errors = %v, want the outage counted", v)
	}

	stop()
	if a := retained(t, b.url(), "kioskd/lobby-1/availability"); a != events.Offline {
		t.Errorf("availability after stop %q, want offline", a)
	}
}

// cutProxy forwards TCP connections to a broker until cut, which drops
// them without a goodbye, as a dead box or a pulled cable would.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(b, c); _ = b.Close() }()
			go func() { _, _ = io.Copy(c, b); _ = c.Close() }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// A connection that drops without a DISCONNECT makes the broker publish
// the last will: availability turns "offline", then "online" again when
// the sink reconnects.
func TestMQTTLastWill(t *testing.T) {
	b := startBroker(t)
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", b.port))
	seen := make(chan string, 16)
	o := mqtt.NewClientOptions().AddBroker(strings.Replace(b.url(), "mqtt://", "tcp://", 1)).SetClientID("test-availability")
	watcher := mqtt.NewClient(o)
	if tok := watcher.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer watcher.Disconnect(100)
	if tok := watcher.Subscribe("kioskd/door-9/availability", 1, func(_ mqtt.Client, m mqtt.Message) { seen <- string(m.Payload()) }); !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("subscribe")
	}
	sc := sinkConfig("mqtt", "mqtt://"+proxy.ln.Addr().String())
	s, err := events.NewMQTTSink(sc, "door-9", quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next := func(want string) {
		t.Helper()
		select {
		case got := <-seen:
			if got != want {
				t.Fatalf("availability %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no availability message, want %q", want)
		}
	}
	next(events.Online)
	proxy.cut()
	next(events.Offline)
	next(events.Online)
}
