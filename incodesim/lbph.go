package incodesim

/*
#cgo !windows pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include <stdlib.h>
#include "lbph.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// lbph is OpenCV's LBPH face recogniser over normalised faceSide² faces.
type lbph struct{ p C.LBPH }

func newLBPH(radius, neighbors, grid int) (*lbph, error) {
	p := C.lbph_new(C.int(radius), C.int(neighbors), C.int(grid))
	if p == nil {
		return nil, errors.New("lbph: cannot create the recogniser")
	}
	return &lbph{p: p}, nil
}

func (l *lbph) close() {
	if l.p != nil {
		C.lbph_free(l.p)
		l.p = nil
	}
}

// update adds faces (each faceSide² bytes) under label.
func (l *lbph) update(faces [][]byte, label int) error {
	if len(faces) == 0 {
		return nil
	}
	n := faceSide * faceSide
	buf := C.malloc(C.size_t(len(faces) * n))
	defer C.free(buf)
	dst := unsafe.Slice((*byte)(buf), len(faces)*n)
	labels := make([]C.int, len(faces))
	for i, f := range faces {
		if len(f) != n {
			return fmt.Errorf("lbph: face %d is %d bytes, want %d", i, len(f), n)
		}
		copy(dst[i*n:], f)
		labels[i] = C.int(label)
	}
	var cerr [256]C.char
	if C.lbph_update(l.p, (*C.uchar)(buf), C.int(len(faces)), faceSide, &labels[0], &cerr[0], C.int(len(cerr))) != 0 {
		return fmt.Errorf("lbph: update: %s", C.GoString(&cerr[0]))
	}
	return nil
}

// predict returns the nearest label and its chi-square distance.
func (l *lbph) predict(face []byte) (int, float64, error) {
	if len(face) != faceSide*faceSide {
		return 0, 0, fmt.Errorf("lbph: face is %d bytes, want %d", len(face), faceSide*faceSide)
	}
	buf := C.CBytes(face)
	defer C.free(buf)
	var label C.int
	var dist C.double
	var cerr [256]C.char
	if C.lbph_predict(l.p, (*C.uchar)(buf), faceSide, &label, &dist, &cerr[0], C.int(len(cerr))) != 0 {
		return 0, 0, fmt.Errorf("lbph: predict: %s", C.GoString(&cerr[0]))
	}
	return int(label), float64(dist), nil
}
