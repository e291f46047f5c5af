// A minimal C interface to OpenCV's imdecode into an existing cv::Mat, which
// gocv v0.31 does not offer: its IMDecode allocates a new Mat every frame.
#ifndef KIOSKD_IMDECODE_H
#define KIOSKD_IMDECODE_H

#ifdef __cplusplus
extern "C" {
#endif

// kioskd_imdecode_into decodes len bytes of buf into dst (a cv::Mat*),
// reusing its memory when the size and type match. 0 on success, 1 when
// the bytes are not a decodable image, -1 with err set on an OpenCV error.
int kioskd_imdecode_into(const unsigned char *buf, int len, int flags, void *dst, char *err, int errlen);

#ifdef __cplusplus
}
#endif

#endif
