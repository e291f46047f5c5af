package decision

import (
	"context"
	"log/slog"
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
	Timeout time.Duration // one delivery, retries included
	Log     *slog.Logger
	Now     func() time.Time
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
	resp, err := d.API.Authenticate(cctx, uploader.FaceRequest(it.JPEG, d.Device.SourceID), uploader.WithIdempotencyKey(it.ID))
	out := Decide(Input{Answer: resp, Err: err, Deferred: true, Stopping: ctx.Err() != nil, Mode: d.Device.Mode})
	if d.OnAuth != nil {
		d.OnAuth(out)
	}
	if out.Retry {
		if err == nil {
			err = Malformed(resp)
		}
		return err
	}
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
