package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/kioskd/kioskd/camera"
	"image"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/capture"
)

// snapshotImageExts are inputs read as one still image; anything else that
// is not a folder is opened as a video.
var snapshotImageExts = []string{".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}

// snapshotRect is a face rectangle in full-resolution pixels.
type snapshotRect struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// snapshotMeasure is one quality measure and the thresholds it is held to.
type snapshotMeasure struct {
	Value float64  `json:"value"`
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
}

// snapshotReport is one line of output: what capture thinks of one frame.
type snapshotReport struct {
	Input    string                     `json:"input"`
	Frame    int                        `json:"frame"`
	Width    int                        `json:"width"`
	Height   int                        `json:"height"`
	Faces    []snapshotRect             `json:"faces"`
	Quality  map[string]snapshotMeasure `json:"quality"`
	Accepted bool                       `json:"accepted"`
	Reasons  []capture.Reason           `json:"reasons"`
	Score    float64                    `json:"score"`
	// Error says why an image of a folder could not be analysed at all.
	Error string `json:"error,omitempty"`
}

// runSnapshot prints a JSON quality report for an image, every image of a
// folder, or every frame of a video, and with --out writes the upload JPEG
// of the best accepted frame. It is how an installer tunes a door.
func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var input, out string
	cfg, fs, code := loadConfig("snapshot", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&input, "input", "", "image, folder of images, or video file to analyse")
		fs.StringVar(&out, "out", "", "write the upload JPEG of the best accepted frame here")
	})
	if code != 0 {
		return code
	}
	if input == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: kioskd snapshot --config FILE --input IMAGE_OR_VIDEO [--out shot.jpg]")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sel, err := capture.New(cfg.Capture, log, prometheus.NewRegistry())
	if err != nil {
		fmt.Fprintf(stderr, "kioskd snapshot: %v\n", err)
		return 1
	}
	defer sel.Close()

	best := gocv.NewMat()
	defer best.Close()
	var (
		bestScore = -1.0
		bestFace  image.Rectangle
		frames    int
	)
	enc := json.NewEncoder(stdout)
	err = eachFrame(ctx, input, cfg.Camera.MaxPixels, func(name string, index int, frame gocv.Mat) error {
		frames++
		a, err := sel.Analyze(frame)
		if err != nil {
			return err
		}
		if err := enc.Encode(report(name, index, frame, a)); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		if a.Accepted && a.Score > bestScore {
			bestScore, bestFace = a.Score, a.Faces[0]
			frame.CopyTo(&best)
		}
		return nil
	}, func(name string, index int, bad error) error {
		frames++
		rep := snapshotReport{Input: name, Frame: index, Faces: []snapshotRect{}, Quality: map[string]snapshotMeasure{},
			Reasons: []capture.Reason{capture.ReasonInvalidFrame}, Error: bad.Error()}
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "kioskd snapshot: %v\n", err)
		return 1
	}
	if frames == 0 {
		fmt.Fprintf(stderr, "kioskd snapshot: %s: no frames\n", input)
		return 1
	}
	if out == "" {
		return 0
	}
	if bestScore < 0 {
		fmt.Fprintf(stderr, "kioskd snapshot: no accepted frame in %s; %s not written\n", input, out)
		return 1
	}
	shot, err := sel.Encode(best, bestFace)
	if err != nil {
		fmt.Fprintf(stderr, "kioskd snapshot: %v\n", err)
		return 1
	}
	// A face image is biometric data: readable by its owner only.
	if err := os.WriteFile(out, shot.JPEG, 0o600); err != nil {
		fmt.Fprintf(stderr, "kioskd snapshot: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "kioskd snapshot: wrote %s (%dx%d, %d bytes, score %.3f)\n", out, shot.Width, shot.Height, len(shot.JPEG), bestScore)
	return 0
}

// eachFrame calls fn for the image, each image of the folder, or each frame
// of the video at path. The frame Mat is only valid during the call.
func eachFrame(ctx context.Context, path string, maxPixels int, fn func(name string, index int, frame gocv.Mat) error, skip func(name string, index int, err error) error) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("input: %w", err)
	}
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("input: %w", err)
		}
		var files []string
		for _, e := range entries {
			if !e.IsDir() && slices.Contains(snapshotImageExts, strings.ToLower(filepath.Ext(e.Name()))) {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		slices.Sort(files)
		for i, f := range files {
			if err := ctx.Err(); err != nil {
				return err
			}
			err := eachImage(f, i, maxPixels, fn)
			if bad, ok := errors.AsType[*undecodableError](err); ok && skip != nil {
				// One bad picture among an installer's test shots must not
				// hide the report on the others.
				if err := skip(f, i, bad); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("input %s is not a file or folder", path)
	}
	if slices.Contains(snapshotImageExts, strings.ToLower(filepath.Ext(path))) {
		return eachImage(path, 0, maxPixels, fn)
	}
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil || !vc.IsOpened() {
		if vc != nil {
			vc.Close()
		}
		return fmt.Errorf("input %s: not an image or a video OpenCV can open", path)
	}
	defer vc.Close()
	if w, h := vc.Get(gocv.VideoCaptureFrameWidth), vc.Get(gocv.VideoCaptureFrameHeight); w*h > float64(maxPixels) {
		return fmt.Errorf("input %s: %.0fx%.0f frames are more than %d pixels (camera.max_pixels)", path, w, h, maxPixels)
	}
	frame := gocv.NewMat()
	defer frame.Close()
	for i := 0; vc.Read(&frame); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(path, i, frame); err != nil {
			return err
		}
	}
	return nil
}

// undecodableError is an image file refused before or by decoding.
type undecodableError struct {
	path string
	err  error
}

func (e *undecodableError) Error() string { return "input " + e.path + ": " + e.err.Error() }

func eachImage(path string, index, maxPixels int, fn func(string, int, gocv.Mat) error) error {
	m, err := camera.ReadImageFile(path, maxPixels)
	if err != nil {
		if _, ok := errors.AsType[*camera.ImageError](err); ok {
			return &undecodableError{path, err}
		}
		return fmt.Errorf("input: %w", err)
	}
	defer m.Close()
	return fn(path, index, m)
}

func report(name string, index int, frame gocv.Mat, a capture.Analysis) snapshotReport {
	r := snapshotReport{
		Input: name, Frame: index, Width: frame.Cols(), Height: frame.Rows(),
		Faces: []snapshotRect{}, Reasons: a.Reasons, Accepted: a.Accepted, Score: a.Score,
		Quality: map[string]snapshotMeasure{},
	}
	if r.Reasons == nil {
		r.Reasons = []capture.Reason{}
	}
	for _, f := range a.Faces {
		r.Faces = append(r.Faces, snapshotRect{f.Min.X, f.Min.Y, f.Dx(), f.Dy()})
	}
	th := func(name string) *float64 {
		if v, ok := a.Thresholds[name]; ok {
			return &v
		}
		return nil
	}
	q := a.Quality
	r.Quality["faces"] = snapshotMeasure{Value: float64(q.Faces), Max: th(capture.ThMaxFaces)}
	if q.Faces == 0 {
		return r
	}
	r.Quality["face_px"] = snapshotMeasure{Value: float64(q.FacePx), Min: th(capture.ThMinFacePx)}
	r.Quality["face_fraction"] = snapshotMeasure{Value: q.FaceFraction, Min: th(capture.ThMinFaceFraction), Max: th(capture.ThMaxFaceFraction)}
	r.Quality["center_offset"] = snapshotMeasure{Value: q.CenterOffset, Max: th(capture.ThMaxCenterOffset)}
	r.Quality["sharpness"] = snapshotMeasure{Value: q.Sharpness, Min: th(capture.ThMinSharpness)}
	r.Quality["brightness"] = snapshotMeasure{Value: q.Brightness, Min: th(capture.ThMinBrightness), Max: th(capture.ThMaxBrightness)}
	r.Quality["contrast"] = snapshotMeasure{Value: q.Contrast, Min: th(capture.ThMinContrast)}
	if t := th(capture.ThMinEyes); t != nil {
		r.Quality["eyes"] = snapshotMeasure{Value: float64(q.Eyes), Min: t}
	}
	return r
}
