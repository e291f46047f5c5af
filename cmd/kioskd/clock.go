package main

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/kioskd/kioskd/agent"
	"github.com/kioskd/kioskd/internal/clockcheck"
	"github.com/kioskd/kioskd/uploader"
)

// buildDate may be set at build time with -ldflags "-X main.buildDate=
// 2026-12-01T00:00:00Z" (RFC 3339); without it, the commit time that the Go
// toolchain records when building from a git checkout is used.
var buildDate = ""

// builtAt is when this binary was built, or zero when it cannot be known. A
// clock earlier than that is plainly wrong.
func builtAt() time.Time {
	if t, err := time.Parse(time.RFC3339, buildDate); err == nil {
		return t
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t
				}
			}
		}
	}
	return time.Time{}
}

// clockWatch shows every answer of the Incode client to the clock checker,
// which recognises a certificate that is not valid yet.
type clockWatch struct {
	agent.Authenticator
	clock *clockcheck.Checker
}

func (w clockWatch) Authenticate(ctx context.Context, req uploader.AuthenticateRequest, opts ...uploader.CallOption) (*uploader.AuthenticateResponse, error) {
	resp, err := w.Authenticator.Authenticate(ctx, req, opts...)
	w.clock.Observe(err)
	return resp, err
}

func (w clockWatch) UserInfo(ctx context.Context, userToken string) (*uploader.UserInfo, error) {
	ui, err := w.Authenticator.UserInfo(ctx, userToken)
	w.clock.Observe(err)
	return ui, err
}
