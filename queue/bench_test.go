package queue_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/incodesim"
	"github.com/kioskd/kioskd/queue"
	"github.com/kioskd/kioskd/uploader"
)

// BenchmarkEnqueue150KB measures Enqueue of a 150 KB capture, fsync
// included, and reports the latency distribution. A backlog of up to 100
// items is kept, acknowledged outside the measured calls.
func BenchmarkEnqueue150KB(b *testing.B) {
	cfg := benchConfig(b)
	q, err := queue.Open(cfg, quiet(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	img := fakeJPEG(150<<10, 1)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	var backlog []uint64
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		it, err := q.Enqueue(ctx, queue.Item{JPEG: img, Source: "bench"})
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		backlog = append(backlog, it.Seq)
		if len(backlog) > 100 {
			b.StopTimer()
			if err := q.Ack(backlog[0]); err != nil {
				b.Fatal(err)
			}
			backlog = backlog[1:]
			b.StartTimer()
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

// BenchmarkDrain measures how fast a backlog reaches the service: real
// uploader client, real emulator (incodesim) on a loopback HTTP server,
// 68 KB enrolled face, items delivered one at a time in order.
func BenchmarkDrain(b *testing.B) {
	const apiKey, token = "bench-api-key", "bench-device-token"
	sim, err := incodesim.New(incodesim.Options{APIKey: apiKey, DeviceToken: token,
		EnrollDir: filepath.Join("..", "testdata", "enroll")}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()

	icfg := config.Default().Incode
	icfg.BaseURL, icfg.APIKey, icfg.HardwareID = srv.URL, apiKey, token
	reg := prometheus.NewRegistry()
	client, err := uploader.New(icfg, "kioskd/bench", quiet(), reg)
	if err != nil {
		b.Fatal(err)
	}
	cfg := benchConfig(b)
	q, err := queue.Open(cfg, quiet(), reg)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	img := testJPEG(b, "astronaut.jpg")
	for range b.N {
		if _, err := q.Enqueue(context.Background(), queue.Item{JPEG: img, Source: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	deliver := func(ctx context.Context, it queue.Item) error {
		resp, err := client.Authenticate(ctx, uploader.AuthenticateRequest{
			Face: uploader.FaceObject{Base64Image: base64.StdEncoding.EncodeToString(it.JPEG)}, Source: it.Source,
		}, uploader.WithIdempotencyKey(it.ID))
		if err != nil {
			return err
		}
		if resp.Status != uploader.StatusPass {
			return queue.Permanent(fmt.Errorf("status %s", resp.Status))
		}
		return nil
	}
	d := queue.NewDrainer(q, deliver, quiet(), reg)
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	start := time.Now()
	sum, err := d.Drain(context.Background(), nil)
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil || sum.Delivered != b.N {
		b.Fatalf("drain: %+v, %v", sum, err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "items/s")
}

// BenchmarkFileSize runs 10,000 enqueue/ack cycles of 150 KB items
// (KIOSKD_BENCH_CYCLES overrides) with a backlog of up to 50 items, and
// reports the largest file size seen against queue.max_bytes. It does the
// whole run once whatever b.N is: use -benchtime=1x.
func BenchmarkFileSize(b *testing.B) {
	cycles := 10000
	if v, err := strconv.Atoi(os.Getenv("KIOSKD_BENCH_CYCLES")); err == nil && v > 0 {
		cycles = v
	}
	cfg := benchConfig(b)
	cfg.MaxBytes = 64 << 20
	q, err := queue.Open(cfg, quiet(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	img := fakeJPEG(150<<10, 1)
	var backlog []uint64
	var peak int64
	b.ResetTimer()
	for i := range cycles {
		it, err := q.Enqueue(context.Background(), queue.Item{JPEG: img})
		if err != nil {
			b.Fatal(err)
		}
		backlog = append(backlog, it.Seq)
		if len(backlog) > 50 || i%5 != 0 {
			if err := q.Ack(backlog[0]); err != nil && !errors.Is(err, queue.ErrNotFound) {
				b.Fatal(err)
			}
			backlog = backlog[1:]
		}
		if i%100 == 0 {
			st, _ := q.Stats()
			peak = max(peak, st.FileBytes)
		}
	}
	b.StopTimer()
	st, _ := q.Stats()
	peak = max(peak, st.FileBytes)
	b.ReportMetric(float64(cycles), "cycles")
	b.ReportMetric(float64(peak), "peak-file-bytes")
	b.ReportMetric(float64(st.FileBytes), "file-bytes")
	b.ReportMetric(float64(cfg.MaxBytes), "limit-bytes")
	b.ReportMetric(float64(peak)/float64(cfg.MaxBytes), "peak/limit")
	if peak > int64(cfg.MaxBytes) {
		b.Errorf("file grew to %d bytes, past the %d byte limit", peak, int64(cfg.MaxBytes))
	}
}

func benchConfig(b *testing.B) config.Queue {
	cfg := config.Default().Queue
	cfg.Encrypt = false
	cfg.Path = filepath.Join(b.TempDir(), "queue.db")
	cfg.MaxItems = 1 << 20
	cfg.MaxBytes = 1 << 30
	return cfg
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
