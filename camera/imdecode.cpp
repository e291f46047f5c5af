#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "imdecode.h"

int kioskd_imdecode_into(const unsigned char *buf, int len, int flags, void *dst, char *err, int errlen) {
	try {
		cv::Mat raw(1, len, CV_8UC1, const_cast<unsigned char *>(buf));
		cv::Mat *out = static_cast<cv::Mat *>(dst);
		cv::imdecode(raw, flags, out);
		return out->empty() ? 1 : 0;
	} catch (const cv::Exception &e) {
		std::snprintf(err, errlen, "%s", e.what());
		return -1;
	}
}
