#include "bench/host_measures.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include "kernels/core/error.h"

namespace hs::bench {

namespace {

// An open file descriptor, closed on scope exit.
struct OpenFile {
  explicit OpenFile(const std::string& path) : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    check(fd >= 0, ErrorKind::Io, std::string("cannot open: ") + std::strerror(errno), path);
  }
  ~OpenFile() { ::close(fd); }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  int64_t size(const std::string& path) const {
    struct stat st {};
    check(::fstat(fd, &st) == 0, ErrorKind::Io, std::string("cannot stat: ") + std::strerror(errno), path);
    return static_cast<int64_t>(st.st_size);
  }
  int fd;
};

}  // namespace

double processCpuSeconds() {
  timespec t{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double median(std::vector<double> v) {
  check(!v.empty(), ErrorKind::Internal, "median of no values");
  std::sort(v.begin(), v.end());
  const size_t mid = v.size() / 2;
  return v.size() % 2 ? v[mid] : 0.5 * (v[mid - 1] + v[mid]);
}

ResidentMemory residentMemory() {
  std::ifstream in("/proc/self/status");
  ResidentMemory m;
  std::string key, unit;
  int64_t kb = 0;
  while (in >> key) {
    if (key == "VmRSS:" || key == "RssAnon:" || key == "RssFile:") {
      in >> kb >> unit;
      (key == "VmRSS:" ? m.total : key == "RssAnon:" ? m.anon : m.file) = kb * 1024;
    }
  }
  return m;
}

void evictFromPageCache(const std::string& path) {
  OpenFile f(path);
  ::fdatasync(f.fd);  // dirty pages cannot be dropped
  const int rc = ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
  check(rc == 0, ErrorKind::Io, std::string("posix_fadvise(DONTNEED) failed: ") + std::strerror(rc), path);
}

double cachedFraction(const std::string& path) {
  OpenFile f(path);
  const int64_t size = f.size(path);
  if (size == 0) return 1.0;
  void* map = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, f.fd, 0);
  check(map != MAP_FAILED, ErrorKind::Io, std::string("cannot mmap: ") + std::strerror(errno), path);
  const int64_t page = ::sysconf(_SC_PAGESIZE), pages = (size + page - 1) / page;
  std::vector<unsigned char> resident(static_cast<size_t>(pages));
  const int rc = ::mincore(map, static_cast<size_t>(size), resident.data());
  ::munmap(map, static_cast<size_t>(size));
  check(rc == 0, ErrorKind::Io, std::string("mincore failed: ") + std::strerror(errno), path);
  const auto in = std::count_if(resident.begin(), resident.end(), [](unsigned char r) { return r & 1; });
  return static_cast<double>(in) / static_cast<double>(pages);
}

uint64_t readWholeFile(const std::string& path, std::vector<char>* reused) {
  OpenFile f(path);
  const int64_t size = f.size(path);
  std::unique_ptr<char[]> fresh;
  char* buffer = nullptr;
  if (reused) {
    reused->resize(static_cast<size_t>(size));
    buffer = reused->data();
  } else {
    fresh.reset(new char[static_cast<size_t>(size)]);
    buffer = fresh.get();
  }
  int64_t done = 0;
  while (done < size) {
    const ssize_t got = ::read(f.fd, buffer + done, static_cast<size_t>(size - done));
    if (got < 0 && errno == EINTR) continue;
    check(got > 0, ErrorKind::Io,
          "read stopped at byte " + std::to_string(done) + " of " + std::to_string(size) + ": " +
              (got < 0 ? std::strerror(errno) : "unexpected end of file"),
          path);
    done += got;
  }
  uint64_t sum = 0;
  for (int64_t i = 0; i < size; i += 4096) sum += static_cast<unsigned char>(buffer[static_cast<size_t>(i)]);
  return sum;
}

}  // namespace hs::bench
