package incodesim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// The labelled set (testdata/faces, provenance in testdata/README.md):
// enrolled are one picture each of ORL subjects s1 and s2 and the
// astronaut; ORL s3 and Messi are never enrolled and are the impostors.
// Each query is shown as taken, and changed the way a camera at a door
// changes a selfie: light, scale, background, head roll and a turn.

type labelled struct {
	person string // "" for someone not enrolled
	file   string
	img    image.Image
}

func loadFaces(t *testing.T, person string) []labelled {
	t.Helper()
	dir := testdataPath(filepath.Join("faces", person))
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []labelled
	for _, e := range ents {
		name := filepath.Join("faces", person, e.Name())
		out = append(out, labelled{person: person, file: name, img: loadImage(t, name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].file < out[j].file })
	return out
}

// withMat runs fn on img as a BGR Mat and returns the result as an image.
func withMat(t *testing.T, img image.Image, fn func(src gocv.Mat, dst *gocv.Mat)) image.Image {
	t.Helper()
	src, err := gocv.ImageToMatRGB(img)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	fn(src, &dst)
	out, err := dst.ToImage()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func lightScale(t *testing.T, img image.Image, gain, offset float64) image.Image {
	return withMat(t, img, func(src gocv.Mat, dst *gocv.Mat) {
		src.ConvertToWithParams(dst, src.Type(), float32(gain), float32(offset))
	})
}

func rollBy(t *testing.T, img image.Image, deg float64) image.Image {
	return withMat(t, img, func(src gocv.Mat, dst *gocv.Mat) { rotate(src, dst, deg) })
}

// turn narrows the picture, as a face turned a little to one side is.
func turn(t *testing.T, img image.Image, f float64) image.Image {
	b := img.Bounds()
	return resize(img, int(float64(b.Dx())*f), b.Dy())
}

// onBackground puts the picture, scaled to a third of the frame's height,
// off-centre on a 640x480 frame of another scene.
func onBackground(t *testing.T, img image.Image, bg string) image.Image {
	t.Helper()
	frame := toRGBA(cover(loadImage(t, bg), 640, 480))
	b := img.Bounds()
	h := 480 / 3 * 2
	w := b.Dx() * h / b.Dy()
	face := resize(img, w, h)
	at := image.Pt(380-w/2, 60)
	draw.Draw(frame, image.Rectangle{at, at.Add(image.Pt(w, h))}, face, image.Point{}, draw.Src)
	return frame
}

type variation struct {
	kind, name string
	fn         func(t *testing.T, img image.Image) image.Image
}

var variations = []variation{
	{"as taken", "re-encoded", func(t *testing.T, img image.Image) image.Image { return decodeBytes(t, encodeJPEG(t, img, 85)) }},
	{"light", "darker", func(t *testing.T, img image.Image) image.Image { return lightScale(t, img, 0.55, 0) }},
	{"light", "brighter", func(t *testing.T, img image.Image) image.Image { return lightScale(t, img, 1.3, 25) }},
	{"scale", "0.6x", func(t *testing.T, img image.Image) image.Image { return scaleBy(img, 0.6) }},
	{"scale", "2x", func(t *testing.T, img image.Image) image.Image { return scaleBy(img, 2) }},
	{"background", "brick", func(t *testing.T, img image.Image) image.Image { return onBackground(t, img, "brick.jpg") }},
	{"background", "coffee", func(t *testing.T, img image.Image) image.Image { return onBackground(t, img, "coffee.jpg") }},
	{"pose", "roll +20°", func(t *testing.T, img image.Image) image.Image { return rollBy(t, img, 20) }},
	{"pose", "turn (0.85 width)", func(t *testing.T, img image.Image) image.Image { return turn(t, img, 0.85) }},
}

type tally struct{ n, pass, wrong, noFace int }

// TestRecognitionRates measures the face recogniser on the labelled set
// and holds it to what docs/incode-sim.md states: every genuine query of
// ORL s1/s2 in another photograph and most changed ones PASS as the right
// person, and no impostor PASSes.
func TestRecognitionRates(t *testing.T) {
	dir := t.TempDir()
	enrolled := map[string]string{ // enrolment file -> person
		"ORL_s1.png":         "orl-s1",
		"ORL_s2.png":         "orl-s2",
		"Eileen_Collins.jpg": "astronaut",
	}
	copyFile(t, testdataPath("faces/orl-s1/1.png"), filepath.Join(dir, "ORL_s1.png"))
	copyFile(t, testdataPath("faces/orl-s2/1.png"), filepath.Join(dir, "ORL_s2.png"))
	copyFile(t, testdataPath("astronaut.jpg"), filepath.Join(dir, "Eileen_Collins.jpg"))
	s, err := New(Options{APIKey: "k", DeviceToken: "d", EnrollDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range s.ids {
		if id.person == nil {
			t.Fatalf("no face found in enrolled %s", id.File)
		}
	}
	byName := map[string]string{}
	for _, id := range s.ids {
		byName[id.FullName] = enrolled[id.File]
	}

	var queries []labelled
	// Genuine: the other photographs of s1 and s2 (taken on other days,
	// other expressions), and the enrolled astronaut picture itself.
	for _, p := range []string{"orl-s1", "orl-s2"} {
		for _, f := range loadFaces(t, p) {
			if !strings.HasSuffix(f.file, "/1.png") {
				queries = append(queries, f)
			}
		}
	}
	queries = append(queries, labelled{person: "astronaut", file: "astronaut.jpg", img: loadImage(t, "astronaut.jpg")})
	// Impostors: never enrolled.
	for _, p := range []string{"orl-s3", "messi"} {
		for i, f := range loadFaces(t, p) {
			if i == 5 {
				break // half of s3 is enough to find its closest distances
			}
			f.person = ""
			queries = append(queries, f)
		}
	}
	// The demo's person B: the astronaut with red and blue swapped.
	queries = append(queries, labelled{file: "astronaut.jpg, red/blue swapped", img: swapRB(loadImage(t, "astronaut.jpg"))})

	genuine := map[string]*tally{}
	impostor := map[string]*tally{}
	var kinds []string
	for _, v := range variations {
		if genuine[v.kind] == nil {
			genuine[v.kind], impostor[v.kind] = &tally{}, &tally{}
			kinds = append(kinds, v.kind)
		}
	}
	type scored struct {
		d     float64
		right bool
		what  string
	}
	var dists []scored
	var falseAccepts []string
	for _, q := range queries {
		for _, v := range variations {
			img := v.fn(t, q.img)
			tl := genuine[v.kind]
			if q.person == "" {
				tl = impostor[v.kind]
			}
			tl.n++
			r, err := s.recogniseFace(img, s.ids)
			if err != nil {
				tl.noFace++
			} else if r.nearest != nil {
				right := q.person != "" && byName[r.nearest.FullName] == q.person
				dists = append(dists, scored{r.dist, right, q.file + " " + v.name})
			}
			var who *identity
			if r.same {
				who = r.nearest
			}
			switch {
			case who == nil:
			case q.person == "":
				tl.wrong++
				falseAccepts = append(falseAccepts, fmt.Sprintf("%s (%s) as %s", q.file, v.name, who.FullName))
			case byName[who.FullName] == q.person:
				tl.pass++
			default:
				tl.wrong++
				falseAccepts = append(falseAccepts, fmt.Sprintf("%s (%s) as %s", q.file, v.name, who.FullName))
			}
		}
	}

	var gAll, iAll tally
	t.Logf("%-11s %-28s %-28s", "change", "same person: PASS (no face)", "someone else: PASS")
	for _, k := range kinds {
		g, i := genuine[k], impostor[k]
		t.Logf("%-11s %3d/%-3d (%d)%17s %d/%d", k, g.pass, g.n, g.noFace, "", i.wrong, i.n)
		gAll.n, gAll.pass, gAll.noFace = gAll.n+g.n, gAll.pass+g.pass, gAll.noFace+g.noFace
		iAll.n, iAll.wrong = iAll.n+i.n, iAll.wrong+i.wrong
	}
	t.Logf("%-11s %3d/%-3d (%d)%17s %d/%d", "all", gAll.pass, gAll.n, gAll.noFace, "", iAll.wrong, iAll.n)
	sort.Slice(dists, func(i, j int) bool { return dists[i].d < dists[j].d })
	for _, d := range dists {
		t.Logf("distance %6.1f right=%v %s", d.d, d.right, d.what)
	}
	for _, fa := range falseAccepts {
		t.Logf("false accept: %s", fa)
	}
	if len(falseAccepts) > 0 {
		t.Errorf("%d false accepts (someone else, or the wrong person, PASSed)", len(falseAccepts))
	}
	if rate := float64(gAll.pass) / float64(gAll.n); rate < minGenuineRate {
		t.Errorf("same person PASSed %d/%d = %.2f, want at least %.2f", gAll.pass, gAll.n, rate, minGenuineRate)
	}
}

// minGenuineRate is the floor for the share of genuine queries that PASS;
// docs/incode-sim.md gives the measured figure.
const minGenuineRate = 0.6

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Over the API: another photograph of an enrolled person (on a background,
// as a camera frame) PASSes as that person; someone else FAILs; a person
// enrolled at run time through /_sim/enroll is recognised too.
func TestAuthenticateRecognisesThePerson(t *testing.T) {
	dir := enrollDir(t, map[string]string{"ORL_Subject_One.png": "faces/orl-s1/1.png"})
	_, srv := newTestSim(t, Options{EnrollDir: dir})
	auth := func(img image.Image) map[string]any {
		t.Helper()
		resp, body := do(t, srv.URL, req{"POST", "/omni/incode-id/authenticate", apiHeaders(nil),
			authBody(t, encodeJPEG(t, img, 90), "desk")})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := auth(onBackground(t, loadImage(t, "faces/orl-s1/3.png"), "brick.jpg")); got["status"] != "PASS" {
		t.Errorf("another photograph of the enrolled person: %v, want PASS", got)
	}
	if got := auth(onBackground(t, loadImage(t, "faces/orl-s3/1.png"), "brick.jpg")); got["status"] != "FAIL" || got["failureReason"] != "faceMatchFailed" {
		t.Errorf("someone else: %v, want FAIL faceMatchFailed", got)
	}

	b, err := json.Marshal(map[string]string{"name": "Subject Two",
		"base64Image": base64.StdEncoding.EncodeToString(readTestdata(t, "faces/orl-s2/1.png"))})
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := do(t, srv.URL, req{"POST", "/_sim/enroll", map[string]string{"Content-Type": "application/json"}, string(b)}); resp.StatusCode != 201 {
		t.Fatalf("enroll: %d %s", resp.StatusCode, body)
	}
	got := auth(loadImage(t, "faces/orl-s2/2.png"))
	if got["status"] != "PASS" {
		t.Fatalf("the person enrolled at run time, another photograph: %v, want PASS", got)
	}
	resp, body := do(t, srv.URL, req{"GET", "/omni/incode-id/verification/" + got["verificationId"].(string), apiHeaders(nil), ""})
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Subject") {
		t.Errorf("verification of the recognised person: %d %s", resp.StatusCode, body)
	}
}
