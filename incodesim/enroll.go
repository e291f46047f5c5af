package incodesim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // decoders for image.Decode
	_ "image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
)

// identity is an enrolled person: one verification that later
// authentications match against.
type identity struct {
	FullName       string
	FirstName      string
	LastName       string
	File           string
	VerificationID string
	// Token is the verification's user token (sent in the
	// verification.completed webhook); each PASS also issues its own.
	Token     string
	CreatedAt time.Time
	face      enrolledFace
	// person is the normalised face of the enrolled picture, nil when the
	// picture shows none; label is its label in the face model.
	person *faceSample
	label  int
	// img is the decoded picture until enrollFace has used it.
	img image.Image
	// Revoked makes userinfo report the identity as REVOKED
	// (POST /_sim/revoke).
	Revoked atomic.Bool
}

// enrollFace finds the face in the enrolled picture and adds it to the
// face model under label. A picture without a face is still enrolled for
// the picture matcher.
func (id *identity) enrollFace(m *faceModel, label int) error {
	if id.img == nil {
		return nil
	}
	s, err := m.sample(id.img)
	id.img = nil
	if errors.Is(err, errNoFace) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := m.enroll(label, s); err != nil {
		return err
	}
	id.person, id.label = &s, label
	return nil
}

// maxEnrollFiles bounds how many pictures are loaded from the folder.
const maxEnrollFiles = 1000

// loadEnrollment reads every JPEG and PNG in dir.
func loadEnrollment(dir string, now time.Time, lim limits) ([]*identity, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	var out []*identity
	var errs []error
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".jpg" && ext != ".jpeg" && ext != ".png") {
			continue
		}
		if len(out) == maxEnrollFiles {
			return nil, fmt.Errorf("enroll: more than %d pictures in %s", maxEnrollFiles, dir)
		}
		path := filepath.Join(dir, e.Name())
		data, err := readBounded(path, int64(lim.maxImageBytes))
		if err != nil {
			errs = append(errs, fmt.Errorf("enroll: %w", err))
			continue
		}
		img, _, err := decodeImage(data, lim)
		if err != nil {
			errs = append(errs, fmt.Errorf("enroll: %s: %w", path, err))
			continue
		}
		id, err := newIdentity(nameFromFile(e.Name()), data, img, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("enroll: %s: %w", path, err))
			continue
		}
		id.File = e.Name()
		out = append(out, id)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return os.ReadFile(path)
}

func newIdentity(name string, data []byte, img image.Image, now time.Time) (*identity, error) {
	sum := sha256.Sum256(data)
	tok, err := randomToken()
	if err != nil {
		return nil, err
	}
	first, last, _ := strings.Cut(name, " ")
	return &identity{
		FullName:       name,
		FirstName:      first,
		LastName:       last,
		VerificationID: hex.EncodeToString(sum[:12]),
		Token:          tok,
		CreatedAt:      now,
		face:           enrolledFace{ras: reduce(img, workSide)},
		img:            img,
	}, nil
}

// nameFromFile turns "Eileen_Collins.jpg" into "Eileen Collins"; a name
// without underscores stays the base name.
func nameFromFile(file string) string {
	base := strings.TrimSuffix(file, filepath.Ext(file))
	name := strings.Join(strings.Fields(strings.ReplaceAll(base, "_", " ")), " ")
	if name == "" {
		return base
	}
	return name
}

// email derives a stable example address from a name.
func email(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.':
			b.WriteByte('.')
		}
	}
	local := strings.Trim(b.String(), ".")
	if local == "" {
		local = "person"
	}
	return local + "@example.com"
}

// decodeImage decodes a JPEG or PNG after checking its header, so that a
// small file claiming enormous dimensions is refused before any pixel is
// allocated.
func decodeImage(data []byte, lim limits) (image.Image, string, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("not a JPEG or PNG image: %w", err)
	}
	if format != "jpeg" && format != "png" {
		return nil, "", fmt.Errorf("image format %s is not JPEG or PNG", format)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > lim.maxSide || cfg.Height > lim.maxSide ||
		int64(cfg.Width)*int64(cfg.Height) > lim.maxPixels {
		return nil, "", fmt.Errorf("image is %dx%d; the limit is %d pixels a side and %d pixels in all",
			cfg.Width, cfg.Height, lim.maxSide, lim.maxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("%s image does not decode: %w", format, err)
	}
	return img, format, nil
}
