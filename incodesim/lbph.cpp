#include "lbph.h"

#include <cstring>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/face.hpp>

namespace {
void set_err(char *err, int errlen, const char *msg) {
	if (errlen <= 0) return;
	std::strncpy(err, msg, errlen - 1);
	err[errlen - 1] = 0;
}

// guarded runs f, turning an OpenCV exception into -1 and a message: an
// exception must not cross into Go.
template <typename F>
int guarded(F f, char *err, int errlen) {
	try {
		f();
		return 0;
	} catch (const cv::Exception &e) {
		set_err(err, errlen, e.what());
	} catch (...) {
		set_err(err, errlen, "unknown exception");
	}
	return -1;
}

cv::Ptr<cv::face::LBPHFaceRecognizer> &rec_of(LBPH m) { return *static_cast<cv::Ptr<cv::face::LBPHFaceRecognizer> *>(m); }
}  // namespace

LBPH lbph_new(int radius, int neighbors, int grid) {
	try {
		return new cv::Ptr<cv::face::LBPHFaceRecognizer>(
		    cv::face::LBPHFaceRecognizer::create(radius, neighbors, grid, grid));
	} catch (...) {
		return nullptr;
	}
}

void lbph_free(LBPH m) { delete &rec_of(m); }

int lbph_update(LBPH m, const unsigned char *pix, int n, int side, const int *labels, char *err, int errlen) {
	return guarded([&] {
		std::vector<cv::Mat> imgs;
		std::vector<int> lab(labels, labels + n);
		for (int i = 0; i < n; i++) {
			// The recogniser copies what it needs (histograms): a header
			// over the caller's bytes is enough.
			imgs.push_back(cv::Mat(side, side, CV_8UC1, const_cast<unsigned char *>(pix) + (size_t)i * side * side));
		}
		rec_of(m)->update(imgs, lab);
	}, err, errlen);
}

int lbph_predict(LBPH m, const unsigned char *pix, int side, int *label, double *dist, char *err, int errlen) {
	return guarded([&] {
		cv::Mat q(side, side, CV_8UC1, const_cast<unsigned char *>(pix));
		rec_of(m)->predict(q, *label, *dist);
	}, err, errlen);
}
