#include "inference/formats/file_write.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "kernels/core/error.h"

namespace hs {

namespace {
[[noreturn]] void fail(const std::string& what, const std::string& path, int fd, const std::string& tmp) {
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (!tmp.empty()) ::unlink(tmp.c_str());
  throw Error(ErrorKind::Io, fmt::format("cannot {}: {}", what, std::strerror(err)), path);
}
}  // namespace

void writeFileAtomically(const std::string& path, const std::vector<ByteChunk>& chunks) {
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) fail("create a temporary file beside it", path, -1, {});
  for (const auto& chunk : chunks) {
    const auto* p = static_cast<const char*>(chunk.data);
    std::size_t left = chunk.size;
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("write", path, fd, tmp);
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  if (::fchmod(fd, 0644) != 0) fail("set permissions on", path, fd, tmp);
  if (::fsync(fd) != 0) fail("fsync", path, fd, tmp);
  if (::close(fd) != 0) fail("close", path, -1, tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename the temporary file onto", path, -1, tmp);
}

}  // namespace hs
