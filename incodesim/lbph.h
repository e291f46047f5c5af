// A minimal C interface to OpenCV's LBPH face recogniser (contrib face
// module). gocv's contrib package cannot be used: it also wraps
// xfeatures2d, which Debian's OpenCV does not ship, and so does not build.
#ifndef KIOSKD_LBPH_H
#define KIOSKD_LBPH_H

#ifdef __cplusplus
extern "C" {
#endif

typedef void *LBPH;

LBPH lbph_new(int radius, int neighbors, int grid);
void lbph_free(LBPH m);
// lbph_update adds n square grey images of side² bytes each, laid end to
// end in pix, under labels. 0 on success, else err holds the reason.
int lbph_update(LBPH m, const unsigned char *pix, int n, int side, const int *labels, char *err, int errlen);
// lbph_predict finds the nearest label and its distance.
int lbph_predict(LBPH m, const unsigned char *pix, int side, int *label, double *dist, char *err, int errlen);

#ifdef __cplusplus
}
#endif

#endif
