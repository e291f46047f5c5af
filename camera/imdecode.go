package camera

/*
#cgo !windows pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include <stdlib.h>
#include "imdecode.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"gocv.io/x/gocv"
)

// errUndecodable says the bytes are not an image OpenCV can decode.
var errUndecodable = errors.New("not a decodable JPEG frame")

// decodeInto decodes a compressed image into dst, reusing dst's pixels when
// the size and type are those of the last frame: at 1920x1080 gocv's
// IMDecode would allocate (and the copy after it touch) 6 MB a frame.
func decodeInto(pkt []byte, flags gocv.IMReadFlag, dst *gocv.Mat) error {
	if len(pkt) == 0 {
		return errUndecodable
	}
	var msg [256]C.char
	switch C.kioskd_imdecode_into((*C.uchar)(unsafe.Pointer(&pkt[0])), C.int(len(pkt)), C.int(flags), unsafe.Pointer(dst.Ptr()), &msg[0], C.int(len(msg))) {
	case 0:
		return nil
	case 1:
		return errUndecodable
	}
	return fmt.Errorf("opencv: %s", C.GoString(&msg[0]))
}
