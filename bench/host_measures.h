// What the benchmarks measure about the host process: wall time, resident memory, page cache.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace hs::bench {

// CPU seconds used by every thread of this process so far.
double processCpuSeconds();

// Wall and process CPU seconds since construction. CPU time is the steadier figure on a shared
// machine: time slices lost to other processes do not count, only work done (with OpenMP threads
// that sleep rather than spin, OMP_WAIT_POLICY=passive).
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()), cpuStart_(processCpuSeconds()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  double cpuSeconds() const { return processCpuSeconds() - cpuStart_; }

 private:
  std::chrono::steady_clock::time_point start_;
  double cpuStart_;
};

// Median of a non-empty list (the mean of the middle two for an even count).
double median(std::vector<double> values);

// Repeated measurements of one thing: wall and CPU seconds of each repetition.
struct Samples {
  std::vector<double> wall, cpu;
  void add(const Stopwatch& sw) { add(sw.seconds(), sw.cpuSeconds()); }
  void add(double wallSeconds, double cpuSeconds) { wall.push_back(wallSeconds), cpu.push_back(cpuSeconds); }
  double wallMedian() const { return median(wall); }
  double cpuMedian() const { return median(cpu); }
};

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

// Reads the whole file with read() into a freshly allocated buffer, as a plain loader would, or into
// `reused` (already faulted in by an earlier call: the bare copy out of the page cache). Returns a
// checksum of one byte per page so the compiler cannot drop the copy.
uint64_t readWholeFile(const std::string& path, std::vector<char>* reused = nullptr);

}  // namespace hs::bench
