package camera

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gocv.io/x/gocv"
)

var imageExts = []string{".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}

func listImages(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if slices.Contains(imageExts, strings.ToLower(filepath.Ext(e.Name()))) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(files)
	return files, nil
}

// folderDevice plays the images of a folder in name order, like a video.
// An image that cannot be decoded is reported and skipped.
type folderDevice struct {
	files     []string
	maxPixels int
	next      int
	width     int
	height    int
	skip      func(path string, err error)
}

func openFolder(dir string, maxPixels int, skip func(string, error)) (*folderDevice, error) {
	files, err := listImages(dir)
	if err != nil {
		return nil, fmt.Errorf("list folder: %w", err)
	}
	if len(files) == 0 {
		return nil, errors.New("folder has no images")
	}
	return &folderDevice{files: files, maxPixels: maxPixels, skip: skip}, nil
}

func (f *folderDevice) Read(dst *gocv.Mat) bool {
	for f.next < len(f.files) {
		p := f.files[f.next]
		f.next++
		m, err := ReadImageFile(p, f.maxPixels)
		if err != nil {
			f.skip(p, err)
			continue
		}
		m.CopyTo(dst)
		f.width, f.height = m.Cols(), m.Rows()
		m.Close()
		return true
	}
	return false
}

func (f *folderDevice) Grab(skip int) { f.next = min(f.next+skip, len(f.files)) }

func (f *folderDevice) Set(gocv.VideoCaptureProperties, float64) {}

func (f *folderDevice) Get(p gocv.VideoCaptureProperties) float64 {
	switch p {
	case gocv.VideoCaptureFrameWidth:
		return float64(f.width)
	case gocv.VideoCaptureFrameHeight:
		return float64(f.height)
	case gocv.VideoCaptureFrameCount:
		return float64(len(f.files))
	}
	return 0
}

func (f *folderDevice) Close() error { return nil }
