package capture

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"gocv.io/x/gocv"
)

// Frame limits. Below minFrameSide no face of a useful size fits; above
// maxFrameSide a frame is a corrupt header or a misconfigured camera, and
// copying it would cost hundreds of megabytes.
const (
	minFrameSide = 32
	maxFrameSide = 8192
)

// Detection tuning. minNeighbors 6 rejects the false positives on the
// brick wall, on blur and on the astronaut's suit (larger than the face,
// so they would have become "the face") that 3-5 let through on the
// detection image, while keeping every test face.
const (
	scaleFactor         = 1.1
	checkScaleFactor    = 1.2
	defaultMinNeighbors = 6
	// detectMargin lets faces somewhat below min_face_px be detected, so the
	// person hears "come closer" rather than nothing.
	detectMargin = 0.75
	// windowMargin keeps the smallest face to find a little above the
	// cascade window in the detection image: Haar cascades find faces of
	// exactly the window size unreliably (measured on testdata: at 1.0 faces
	// of 116-138 px in a 1280 frame were missed, at 1.2 they were found).
	windowMargin = 1.2
	// trackWindowMargin sizes the tracked face in the region search.
	trackWindowMargin = 2.0
	// thumbWidth is the width of the change-test thumbnail.
	thumbWidth = 32
	claheClip  = 2.0
	claheTiles = 4
	// confirmEmpty is how many searches in a row must find nothing before an
	// unchanged scene is skipped: a detector misses a face now and then, and
	// a person standing still must not be ignored for a second because of it.
	confirmEmpty = 3
	// forceFullEvery bounds how long a static scene can skip the cascade
	// (10 s at 30 fps). The change test compares with the last scene the
	// cascade looked at, so drift adds up until it counts; a forced search
	// of an unchanged scene finds what the last one found. Once a second
	// it cost 3.5% of a core on a static 1280x720 scene, most of the budget.
	forceFullEvery = 300
	// emptyBudgetPx is the detection-image area (that of a 1920x1080
	// frame's, 640x360) searched on every emptySearchEvery-th frame of a
	// moving scene with nobody in it; larger detection images are searched
	// proportionally less often. A moving background (a corridor with people
	// passing, a panning or auto-exposing camera) defeats the change test,
	// and a whole-frame search on every frame of it cost a whole core at
	// 1280x720 (issue 18). Every third frame keeps what a person arriving
	// loses to at most two frames, and the cost at 1920x1080 to about 13 ms
	// a frame. Once a face is found, every frame is searched again.
	emptyBudgetPx    = 640 * 360
	emptySearchEvery = 3
	// emptyFineEvery: after a scene starts moving, confirmEmpty+emptyFineEvery
	// searches (coarse, then fine when the coarse one missed) look at it
	// before the budget of a moving empty scene takes over; from then on
	// the search is coarse only (the fine pyramid cost 60 ms at 1920x1080,
	// two frames).
	emptyFineEvery = 4
	// stillFrames unchanged frames in a row end a moving scene.
	stillFrames = 10
)

// validFrame says why a frame cannot be analysed, or "" when it can.
func validFrame(m gocv.Mat) string {
	if m.Ptr() == nil || m.Empty() {
		return "empty frame"
	}
	if len(m.Size()) != 2 {
		return fmt.Sprintf("%d-dimensional frame", len(m.Size()))
	}
	w, h := m.Cols(), m.Rows()
	if w < minFrameSide || h < minFrameSide || w > maxFrameSide || h > maxFrameSide {
		return fmt.Sprintf("frame %dx%d is outside %d..%d px", w, h, minFrameSide, maxFrameSide)
	}
	switch m.Type() {
	case gocv.MatTypeCV8UC1, gocv.MatTypeCV8UC3, gocv.MatTypeCV8UC4:
		return ""
	}
	return fmt.Sprintf("frame type %v is not 8-bit grey, BGR or BGRA", m.Type())
}

// cascadeWindow checks that path is a well-formed OpenCV cascade and reads
// its detection window size: Haar and LBP frontal faces use 24x24 (alt:
// 20x20), eyes 20x20. OpenCV raises any smaller minSize to it silently, so
// it is the real lower bound. The check runs before OpenCV sees the file,
// because gocv v0.31 aborts the process when the C++ parser throws.
func cascadeWindow(path string) (image.Point, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return image.Point{}, fmt.Errorf("read cascade: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > 64<<20 {
		return image.Point{}, fmt.Errorf("cascade %s: not a regular file under 64 MiB", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return image.Point{}, fmt.Errorf("read cascade: %w", err)
	}
	defer f.Close()
	dec := xml.NewDecoder(bufio.NewReader(f))
	var (
		depth    int
		root     string
		kind     string
		win      image.Point
		field    string
		elements int
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return image.Point{}, fmt.Errorf("cascade %s: not well-formed XML: %w", path, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			elements++
			if depth == 1 {
				root = t.Name.Local
			}
			if depth == 2 && t.Name.Local == "cascade" && kind == "" {
				kind = "cascade"
			}
			if depth == 2 {
				for _, a := range t.Attr {
					if a.Name.Local == "type_id" {
						kind = a.Value
					}
				}
			}
			field = ""
			if depth == 3 {
				field = t.Name.Local
			}
		case xml.EndElement:
			depth--
			field = ""
		case xml.CharData:
			v := strings.Fields(string(t))
			switch {
			case field == "width" && win.X == 0 && len(v) == 1:
				win.X, _ = strconv.Atoi(v[0])
			case field == "height" && win.Y == 0 && len(v) == 1:
				win.Y, _ = strconv.Atoi(v[0])
			case field == "size" && win == image.Point{} && len(v) == 2: // old Haar format
				win.X, _ = strconv.Atoi(v[0])
				win.Y, _ = strconv.Atoi(v[1])
			}
		}
	}
	if root != "opencv_storage" || (kind != "cascade" && kind != "opencv-cascade-classifier" && kind != "opencv-haar-classifier") || elements < 10 {
		return image.Point{}, fmt.Errorf("cascade %s: not an OpenCV cascade classifier file", path)
	}
	if win.X <= 0 || win.Y <= 0 || win.X > 200 || win.Y > 200 {
		return image.Point{}, fmt.Errorf("cascade %s: no detection window size in its header", path)
	}
	return win, nil
}

func loadCascade(path string) (gocv.CascadeClassifier, image.Point, error) {
	win, err := cascadeWindow(path)
	if err != nil {
		return gocv.CascadeClassifier{}, image.Point{}, err
	}
	c := gocv.NewCascadeClassifier()
	if !c.Load(path) {
		c.Close()
		return gocv.CascadeClassifier{}, image.Point{}, fmt.Errorf("load cascade %s: not a cascade OpenCV can read", path)
	}
	return c, win, nil
}

// detector runs the face cascade on a grey, equalised copy of the frame
// downscaled so that the smallest face to find is just above the cascade's
// window, and maps rectangles back to full resolution. Its Mats are reused
// from frame to frame.
type detector struct {
	cascade      gocv.CascadeClassifier
	win          image.Point
	minFace      int // full-resolution px the detector must still find
	detectWidth  int // configured; 0 derives it from minFace
	minNeighbors int

	fullGray, gray, thumb, lastThumb, diff, roi gocv.Mat
	sample, sampleGray, faceThumb               gocv.Mat
	clahe                                       gocv.CLAHE

	// Per frame size.
	frameSize image.Point
	smallSize image.Point
	crop      image.Rectangle // part of the frame that is a whole multiple of smallSize
	scale     float64         // full-resolution px per detection px
	minSize   image.Point

	// Tracking state (Process only).
	last      []image.Rectangle // detection coordinates
	sinceFull int
	haveThumb bool
	// hold is set by the selector in cooldown; faceThumb is the thumbnail
	// of the last frame a search found a face in.
	hold          bool
	haveFaceThumb bool
	wakeMissed    bool // the coarse first look at a change found nobody
	emptyRuns     int  // consecutive searches that found no face
	// skip counts the frames of a moving empty scene left until the next
	// search; still the frames in a row that did not change.
	skip, still int

	// warnSmall is set when a configured detect_width cannot see minFace.
	warnSmall func(effective int)
}

func newDetector(cascade gocv.CascadeClassifier, win image.Point, minFace, detectWidth int) *detector {
	return &detector{
		cascade: cascade, win: win, minFace: minFace, detectWidth: detectWidth, minNeighbors: defaultMinNeighbors,
		fullGray: gocv.NewMat(), gray: gocv.NewMat(), thumb: gocv.NewMat(), roi: gocv.NewMat(),
		lastThumb: gocv.NewMat(), diff: gocv.NewMat(), sample: gocv.NewMat(), sampleGray: gocv.NewMat(), faceThumb: gocv.NewMat(),
		clahe: gocv.NewCLAHEWithParams(claheClip, image.Pt(claheTiles, claheTiles)),
	}
}

func (d *detector) Close() {
	d.cascade.Close()
	d.clahe.Close()
	for _, m := range []*gocv.Mat{&d.fullGray, &d.roi, &d.gray, &d.thumb, &d.lastThumb, &d.diff, &d.sample, &d.sampleGray, &d.faceThumb} {
		m.Close()
	}
}

// DetectWidth is the width of the detection image for a frame width: at
// least the width that keeps minFace above the cascade window once scaled
// (a smaller scaled minSize would silently become the window, and the real
// minimum face would grow), or the configured width. It is then rounded up
// to the frame width divided by a whole factor, because OpenCV's area
// resampling is five times faster for whole factors (1 ms instead of 4.7 ms
// for 1280x720 on one core).
func DetectWidth(frameWidth, minFace, window, configured int) int {
	return frameWidth / detectFactor(frameWidth, minFace, window, configured)
}

// detectFactor is the whole downscaling factor from frame to detection image.
func detectFactor(frameWidth, minFace, window, configured int) int {
	w := configured
	if w <= 0 {
		w = int(math.Ceil(float64(frameWidth) * float64(window) * windowMargin / float64(minFace)))
		w = max(w, min(128, frameWidth))
	}
	w = min(max(w, 1), frameWidth)
	return max(frameWidth/w, 1)
}

func (d *detector) setSize(w, h int) {
	if d.frameSize == image.Pt(w, h) {
		return
	}
	d.frameSize = image.Pt(w, h)
	k := detectFactor(w, d.minFace, d.win.X, d.detectWidth)
	if h/k < d.win.Y {
		k = max(h/d.win.Y, 1)
	}
	d.smallSize = image.Pt(w/k, h/k)
	// The few rows and columns beyond a whole multiple are left out, so
	// that resampling takes OpenCV's fast whole-factor path.
	d.crop = image.Rect(0, 0, d.smallSize.X*k, d.smallSize.Y*k)
	d.scale = float64(k)
	m := int(math.Floor(float64(d.minFace) / d.scale))
	if m < d.win.X && d.warnSmall != nil {
		d.warnSmall(int(math.Ceil(float64(d.win.X) * d.scale)))
	}
	d.minSize = image.Pt(max(m, d.win.X), max(m*d.win.Y/d.win.X, d.win.Y))
	d.last = nil
	d.haveThumb = false
	d.haveFaceThumb = false
}

// prepare makes the grey, equalised detection image of frame. Equalisation
// is local (CLAHE): a global histogram equalisation is dominated by the
// background, and on testdata it lost every face of 90-140 px in front of a
// brick wall and invented faces on the coffee picture, while CLAHE kept them
// all, still rescues dark frames, and helps with a bright window behind
// the person, the usual lighting at a door. A 4x4 grid, not OpenCV's usual
// 8x8: on a 200-400 px detection image 8x8 tiles are so small that CLAHE
// amplifies sensor noise, and on noisy 640x480 frames the face was found in
// 12 of 30 frames instead of 29.
func (d *detector) prepare(frame gocv.Mat) {
	d.setSize(frame.Cols(), frame.Rows())
	// Grey first: resampling one channel costs a third of three.
	src := grey(frame, &d.fullGray)
	region := src.Region(d.crop)
	if d.scale == 1 {
		region.CopyTo(&d.gray)
	} else {
		gocv.Resize(region, &d.gray, d.smallSize, 0, 0, gocv.InterpolationArea)
	}
	region.Close()
	d.clahe.Apply(d.gray, &d.gray)
}

// grey is src in grey: converted into buf when it has colour, src itself
// when it is grey already.
func grey(src gocv.Mat, buf *gocv.Mat) gocv.Mat {
	switch src.Channels() {
	case 3:
		gocv.CvtColor(src, buf, gocv.ColorBGRToGray)
		return *buf
	case 4:
		gocv.CvtColor(src, buf, gocv.ColorBGRAToGray)
		return *buf
	}
	return src
}

// thumbnail makes the change-test thumbnail straight from the frame: an
// eighth-size point-sampled copy, grey, averaged down to thumbWidth. On a
// static scene it is all the work a frame gets, so it must not cost what
// the detection image does (0.07 ms instead of about 1.5 ms at 1280x720):
// each thumbnail pixel still averages a hundred frame pixels, which keeps
// sensor noise far below the change threshold. It looks at the scene as
// the camera saw it: CLAHE would amplify noise into "motion".
func (d *detector) thumbnail(frame gocv.Mat) {
	w, h := max(frame.Cols()/8, 1), max(frame.Rows()/8, 1)
	gocv.Resize(frame, &d.sample, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)
	src := grey(d.sample, &d.sampleGray)
	tw := min(thumbWidth, w)
	th := max(h*tw/w, 1)
	gocv.Resize(src, &d.thumb, image.Pt(tw, th), 0, 0, gocv.InterpolationArea)
}

// changed compares a small thumbnail of the prepared frame with the one of
// the last frame the cascade ran on.
func (d *detector) changed(threshold float64) (float64, bool) {
	if !d.haveThumb {
		return math.Inf(1), true
	}
	v := d.diffFrom(d.lastThumb)
	return v, v >= threshold
}

// diffFrom is the mean absolute difference of the thumbnail from ref.
func (d *detector) diffFrom(ref gocv.Mat) float64 {
	if ref.Cols() != d.thumb.Cols() || ref.Rows() != d.thumb.Rows() {
		return math.Inf(1)
	}
	gocv.AbsDiff(d.thumb, ref, &d.diff)
	return d.diff.Mean().Val1
}

// full searches the whole detection image.
func (d *detector) full(scale float64) []image.Rectangle {
	return d.cascade.DetectMultiScaleWithParams(d.gray, scale, d.minNeighbors, 0, d.minSize, image.Point{})
}

// near searches a region around the last face for a face of about its
// size. The region is first shrunk so that the expected face is just above
// the cascade window: a Haar cascade's cost is the number of windows it
// evaluates, and a face of 80 px searched at 80 px costs ten times more
// than at 38 px, for the same answer.
func (d *detector) near(r image.Rectangle) []image.Rectangle {
	pad := r.Dx() * 2 / 5
	roi := r.Inset(-pad).Intersect(image.Rect(0, 0, d.smallSize.X, d.smallSize.Y))
	target := float64(d.win.X) * trackWindowMargin
	q := math.Max(float64(r.Dx())/target, 1) // detection px per scan px
	face := float64(r.Dx()) / q
	minS := max(int(face*0.75), d.win.X, int(math.Ceil(float64(d.minSize.X)/q)))
	maxS := int(face * 1.4)
	sw, sh := int(float64(roi.Dx())/q), int(float64(roi.Dy())/q)
	if sw < minS || sh < minS || maxS < minS {
		return nil
	}
	region := d.gray.Region(roi)
	defer region.Close()
	scan := region
	if q > 1 {
		gocv.Resize(region, &d.roi, image.Pt(sw, sh), 0, 0, gocv.InterpolationArea)
		scan = d.roi
	}
	found := d.cascade.DetectMultiScaleWithParams(scan, scaleFactor, d.minNeighbors, 0, image.Pt(minS, minS), image.Pt(maxS, maxS))
	for i, f := range found {
		found[i] = image.Rect(
			roi.Min.X+int(math.Round(float64(f.Min.X)*q)), roi.Min.Y+int(math.Round(float64(f.Min.Y)*q)),
			roi.Min.X+int(math.Round(float64(f.Max.X)*q)), roi.Min.Y+int(math.Round(float64(f.Max.Y)*q)),
		).Intersect(image.Rect(0, 0, d.smallSize.X, d.smallSize.Y))
	}
	return found
}

// detectResult says what the detector did for one frame.
type detectResult struct {
	faces   []image.Rectangle // full resolution, largest first
	ran     bool              // the cascade ran (not skipped as unchanged)
	full    bool              // a whole-frame search ran
	changed float64           // change-test value, +Inf when not computed
}

// detect finds faces in frame. With track it searches near the last face
// and skips an unchanged empty scene; without it every call is a full search.
func (d *detector) detect(frame gocv.Mat, track bool, changeThreshold float64, fullEvery int) detectResult {
	d.setSize(frame.Cols(), frame.Rows())
	res := detectResult{changed: math.Inf(1)}
	woke := false   // an empty scene changed
	forced := false // an unchanged empty scene is looked at again anyway
	if track && changeThreshold > 0 {
		// The change test comes before the detection image is made: an
		// unchanged scene costs the thumbnail and nothing else.
		d.thumbnail(frame)
		if d.hold && len(d.last) > 0 && d.haveFaceThumb {
			// Cooldown only asks whether the face is still there: while the
			// scene looks as it did when the face was last found, it is.
			if v := d.diffFrom(d.faceThumb); v < changeThreshold {
				res.changed = v
				return d.finish(res, append([]image.Rectangle(nil), d.last...))
			}
		}
		forced = d.emptyRuns >= confirmEmpty && d.sinceFull >= forceFullEvery
		if d.emptyRuns >= confirmEmpty && d.sinceFull < forceFullEvery {
			// The budget counts frames, moving or not, so that a person
			// arriving is looked for within emptySearchEvery frames.
			d.skip = max(d.skip-1, 0)
			var moved bool
			res.changed, moved = d.changed(changeThreshold)
			if !moved {
				if d.still++; d.still >= stillFrames {
					// The scene has stopped moving: the next change is news
					// again (a coarse, then a fine look), not more of a
					// moving scene.
					d.emptyRuns = min(d.emptyRuns, confirmEmpty)
				}
				d.sinceFull++
				return res
			}
			d.still = 0
			if d.skip > 0 {
				// Nobody was there a frame or two ago, and the scene keeps
				// moving: the search budget of an empty scene.
				d.sinceFull++
				return res
			}
			woke = true
		}
	}
	d.prepare(frame)
	var found []image.Rectangle
	if !track {
		found = d.full(scaleFactor)
		res.ran, res.full = true, true
	} else {
		triedNear := false
		// In cooldown nobody else is looked for: no shot is taken.
		if len(d.last) == 1 && (d.hold || d.sinceFull < fullEvery-1) {
			found = d.near(d.last[0])
			res.ran, triedNear = true, true
		}
		wake := false
		if len(found) == 0 {
			scale := scaleFactor
			switch {
			case len(d.last) == 1 && !triedNear:
				// The scheduled look for someone else while a face is tracked:
				// a coarser pyramid halves its cost, and the tracked face is
				// still checked in its region if this misses it.
				scale = checkScaleFactor
			case forced:
				// The safety look at a scene that has not changed: coarse
				// is enough, and it comes every forceFullEvery frames.
				scale = checkScaleFactor
			case woke && d.emptyRuns < confirmEmpty+emptyFineEvery && !d.wakeMissed:
				// Something moved in a scene that was still: the first look
				// is coarse too (22 ms instead of 40 ms at 1280x720), so that
				// the frames that count a new presence keep the camera's
				// pace; if it finds nobody, the next frame gets the fine search.
				scale, wake = checkScaleFactor, true
			case woke && d.emptyRuns >= confirmEmpty+emptyFineEvery:
				// A scene that keeps moving with nobody in it: coarse, and
				// only every few frames (see emptyBudgetPx).
				scale = checkScaleFactor
			}
			found = d.full(scale)
			res.ran, res.full = true, true
		}
		if len(found) == 0 && len(d.last) == 1 && !triedNear {
			// A scheduled whole-frame search can miss a face the focused
			// search still sees; one miss must not lose the person.
			found = d.near(d.last[0])
		}
		if res.full {
			d.sinceFull = 0
		} else {
			d.sinceFull++
		}
		d.last = append(d.last[:0], found...)
		if len(found) == 0 {
			d.emptyRuns++
			if woke && d.emptyRuns >= confirmEmpty+emptyFineEvery {
				d.skip = d.emptySkip() + 1 // this frame's decrement is behind it
			}
		} else {
			d.emptyRuns = 0
		}
		d.wakeMissed = wake && len(found) == 0
		if len(found) == 0 && changeThreshold > 0 && !d.wakeMissed {
			// Remember the empty scene the cascade actually looked at, so
			// that slow drift accumulates until it counts as a change. A
			// coarse look that found nobody does not count: the scene is
			// still new to the fine search.
			d.thumb.CopyTo(&d.lastThumb)
			d.haveThumb = true
		}
		if len(found) > 0 && changeThreshold > 0 {
			d.thumb.CopyTo(&d.faceThumb)
			d.haveFaceThumb = true
		}
	}
	return d.finish(res, found)
}

// emptySkip is how many frames of a moving empty scene follow a search
// unsearched: emptySearchEvery-1 for a detection image of emptyBudgetPx or
// less, proportionally more for larger ones, so that an empty moving scene
// costs about the same share of a core whatever the camera's resolution.
func (d *detector) emptySkip() int {
	area := float64(d.smallSize.X * d.smallSize.Y)
	return max(int(math.Ceil(emptySearchEvery*area/emptyBudgetPx))-1, emptySearchEvery-1)
}

// finish maps found (detection coordinates) to the frame, largest first.
func (d *detector) finish(res detectResult, found []image.Rectangle) detectResult {
	sort.Slice(found, func(i, j int) bool {
		return found[i].Dx()*found[i].Dy() > found[j].Dx()*found[j].Dy()
	})
	res.faces = make([]image.Rectangle, len(found))
	for i, r := range found {
		res.faces[i] = d.toFull(r)
	}
	return res
}

func (d *detector) toFull(r image.Rectangle) image.Rectangle {
	f := func(v int) int { return int(math.Round(float64(v) * d.scale)) }
	out := image.Rect(f(r.Min.X), f(r.Min.Y), f(r.Max.X), f(r.Max.Y))
	return out.Intersect(image.Rect(0, 0, d.frameSize.X, d.frameSize.Y))
}

// reset forgets tracking state, e.g. after detection was paused.
func (d *detector) reset() {
	d.skip, d.still = 0, 0
	d.last = nil
	d.sinceFull = 0
	d.haveThumb = false
	d.haveFaceThumb = false
	d.wakeMissed = false
	d.emptyRuns = 0
}
