#pragma once
// The real images Debian's opencv-doc ships, which the data tests convert: the handwritten
// digits sheet and the vtest.avi street video.
#include <opencv2/core.hpp>
#include <string>

namespace gemel::testing {

inline const std::string kOpenCVData = "/usr/share/doc/opencv-doc/examples/data";
inline const std::string kDigitsSheet = kOpenCVData + "/digits.png";
inline const std::string kStreetVideo = kOpenCVData + "/vtest.avi";

// digits.png: 50 rows x 100 columns of 20x20 cells; rows 5d..5d+4 hold digit d. The k-th
// (0..499) cell of digit d.
inline cv::Mat digitCell(const cv::Mat& sheet, int d, int k) {
  return sheet(cv::Rect((k % 100) * 20, (5 * d + k / 100) * 20, 20, 20)).clone();
}

}  // namespace gemel::testing
