package decision

import (
	"context"
	"fmt"
	"time"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/queue"
	"github.com/kioskd/kioskd/uploader"
)

// Authenticator is what a delivery needs from the Incode client.
type Authenticator interface {
	Authenticate(ctx context.Context, req uploader.AuthenticateRequest, opts ...uploader.CallOption) (*uploader.AuthenticateResponse, error)
}

// Delivery sends queued captures and records their answers. Its Deliver is
// the queue's DeliverFunc for the agent's drainer and for
// `kioskd queue drain` alike.
type Delivery struct {
	API     Authenticator
	Rec     *Recorder
	Device  config.Device
	Timeout time.Duration // one delivery: a single request
	// RetryAfterMax caps the server's Retry-After (queue.retry_after_max).
	RetryAfterMax time.Duration
	Now           func() time.Time
	// OnAuth, when set, is told what each answer said about the device's
	// credentials.
	OnAuth func(Outcome)
}

// Deliver sends it with its own idempotency key. nil: answered and
// recorded (ack); queue.Permanent: refused for good and recorded (dead
// letter); any other error: nothing decided, try again later.
func (d *Delivery) Deliver(ctx context.Context, it queue.Item) error {
	cctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	// One request per try: the drainer owns the schedule of the next one.
	resp, err := d.API.Authenticate(cctx, uploader.FaceRequest(it.JPEG, d.Device.SourceID),
		uploader.WithIdempotencyKey(it.ID), uploader.WithoutRetries())
	out := Decide(Input{Answer: resp, Err: err, Deferred: true, Stopping: ctx.Err() != nil, Mode: d.Device.Mode})
	if d.OnAuth != nil {
		d.OnAuth(out)
	}
	if out.Retry {
		wait, ok := uploader.RetryAfter(err)
		if !ok {
			d.Rec.m.deferredWait.Set(0)
			return err
		}
		if d.RetryAfterMax > 0 {
			wait = min(wait, d.RetryAfterMax)
		}
		d.Rec.m.deferredWait.Set(wait.Seconds())
		return &waitError{err: err, wait: wait}
	}
	d.Rec.m.deferredWait.Set(0)
	rec := NewRecord(d.Now(), d.Device, KindDeferred, out, resp)
	rec.CaptureID, rec.CapturedAt = it.ID, it.CapturedAt
	rec.Latency = max(d.Now().Sub(it.CapturedAt), 0)
	var extra []any
	if err != nil {
		extra = append(extra, "err", err)
	}
	if out.Permanent {
		if err == nil {
			err = Malformed(resp)
		}
		d.Rec.Record(ctx, rec, extra...)
		return queue.Permanent(err)
	}
	d.Rec.Record(ctx, rec, extra...)
	return nil
}

// waitError is a retryable delivery error with the server's wait; the
// drainer sends nothing before the wait has passed.
type waitError struct {
	err  error
	wait time.Duration
}

func (e *waitError) Error() string {
	return fmt.Sprintf("%v (the service asked to wait %s)", e.err, e.wait)
}
func (e *waitError) Unwrap() error             { return e.err }
func (e *waitError) RetryAfter() time.Duration { return e.wait }
