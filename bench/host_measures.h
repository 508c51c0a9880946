// What the benchmarks measure about the host process: wall time, resident memory, page cache.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace hs::bench {

// Seconds since construction (steady clock).
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Median of a non-empty list (the mean of the middle two for an even count).
double median(std::vector<double> values);

// Resident memory of this process from /proc/self/status, in bytes: anonymous pages (heap,
// converted weights) apart from file-backed ones (mapped checkpoints).
struct ResidentMemory {
  int64_t total = 0, anon = 0, file = 0;
};
ResidentMemory residentMemory();

// Drops the file's pages from the page cache (posix_fadvise DONTNEED; needs no root because the
// pages are clean), so the next access reads the disk.
void evictFromPageCache(const std::string& path);
// Fraction of the file's pages in the page cache (mincore), to show eviction worked.
double cachedFraction(const std::string& path);

// Reads the whole file with read() into a freshly allocated buffer, as a plain loader would; returns
// a checksum of one byte per page so the compiler cannot drop the copy.
uint64_t readWholeFile(const std::string& path);

}  // namespace hs::bench
