// Command mkclip writes a synthetic test clip (MJPG .avi) or image folder
// from the photos in testdata/, for tests, benchmarks and the demo.
//
//	go run ./internal/testmedia/mkclip -out out/door.avi -size 1280x720 -fps 15 \
//	    -script "empty:10,a:30,empty:10,b:30,empty:10"
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/kioskd/kioskd/internal/testmedia"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkclip", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "output .avi file, or a directory for -folder")
	size := fs.String("size", "1280x720", "frame size WxH")
	fps := fs.Float64("fps", 15, "frames per second")
	script := fs.String("script", "empty:10,a:30,empty:10,b:30,empty:10", "scene:frames,... (scenes: "+strings.Join(testmedia.SceneNames(), ", ")+")")
	folder := fs.Bool("folder", false, "write numbered JPEG files into -out instead of a clip")
	noise := fs.Int("noise", 0, "sensor noise amplitude in grey levels")
	data := fs.String("testdata", "", "testdata directory (default: found above the working directory)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" {
		fmt.Fprintln(stderr, "mkclip: -out is required")
		return 2
	}
	ws, hs, ok := strings.Cut(*size, "x")
	w, errW := strconv.Atoi(ws)
	h, errH := strconv.Atoi(hs)
	if !ok || errW != nil || errH != nil {
		fmt.Fprintf(stderr, "mkclip: -size %q: want WxH\n", *size)
		return 2
	}
	segs, err := testmedia.ParseScript(*script)
	if err != nil {
		fmt.Fprintf(stderr, "mkclip: %v\n", err)
		return 2
	}
	dir := *data
	if dir == "" {
		if dir, err = testmedia.Dir(); err != nil {
			fmt.Fprintf(stderr, "mkclip: %v\n", err)
			return 1
		}
	}
	g, err := testmedia.NewGenerator(dir)
	if err != nil {
		fmt.Fprintf(stderr, "mkclip: %v\n", err)
		return 1
	}
	defer g.Close()
	if *folder {
		files, err := g.WriteFolder(*out, w, h, segs)
		if err != nil {
			fmt.Fprintf(stderr, "mkclip: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: %d frames\n", *out, len(files))
		return 0
	}
	if err := g.WriteClip(*out, w, h, *fps, segs, testmedia.ClipOptions{Noise: *noise}); err != nil {
		fmt.Fprintf(stderr, "mkclip: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d frames at %dx%d, %g fps\n", *out, len(testmedia.FrameScenes(segs)), w, h, *fps)
	return 0
}
