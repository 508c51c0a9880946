#include "inference/formats/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "inference/formats/file_write.h"
#include "kernels/core/error.h"

namespace hs {

namespace {

using json = nlohmann::json;

// huggingface/safetensors MAX_HEADER_SIZE: a larger header is refused before it is read.
constexpr std::uint64_t kMaxHeaderSize = 100'000'000;

// dtypes the reference crate knows but HeadScope does not: reported as unsupported, not unknown.
const std::set<std::string> kKnownButUnsupported = {
    "F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "U16", "U32", "U64", "C64"};

std::string lfsHint(const unsigned char* data, std::size_t size) {
  if (size >= 8 && std::memcmp(data, "version ", 8) == 0)
    return " (the file starts with \"version \": a Git LFS pointer or incomplete download?)";
  return " (Git LFS pointer or incomplete download?)";
}

// One header entry before the file's data pointer is known.
struct Entry {
  TensorView view;
  std::uint64_t begin = 0, end = 0;
};

struct Layout {
  std::vector<Entry> entries;  // sorted by offsets
  std::map<std::string, std::string> metadata;
  std::uint64_t dataStart = 0;  // 8 + N
};

// Parses the header JSON and rejects duplicate keys at any depth: nlohmann (like Python's json)
// would silently keep the last one, which is the parser differential safetensors warns about.
json parseHeaderJson(const unsigned char* text, std::size_t n, const std::string& path) {
  const auto* nul = static_cast<const unsigned char*>(std::memchr(text, 0, n));
  if (nul)
    throw Error(ErrorKind::Corrupt,
                fmt::format("NUL byte at file offset {} (the header may only be padded with spaces, 0x20)",
                            8 + (nul - text)),
                path, "header");
  std::size_t lead = 0;
  while (lead < n && text[lead] == ' ') ++lead;
  if (lead == n || text[lead] != '{')
    throw Error(ErrorKind::Corrupt,
                lead == n ? std::string("header is empty: expected a JSON object starting with '{'")
                          : fmt::format("header must start with '{{', found byte 0x{:02x} at file offset {}",
                                        text[lead], 8 + lead),
                path, "header");
  std::vector<std::set<std::string>> keysPerObject;
  auto rejectDuplicates = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keysPerObject.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keysPerObject.empty()) keysPerObject.pop_back();
    } else if (event == json::parse_event_t::key && !keysPerObject.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!keysPerObject.back().insert(key).second) {
        if (keysPerObject.size() == 1)
          throw Error(ErrorKind::Corrupt, "duplicate tensor name in header", path, key);
        throw Error(ErrorKind::Corrupt, fmt::format("duplicate key \"{}\" in header", key), path, "header");
      }
    }
    return true;
  };
  try {
    return json::parse(text + lead, text + n, rejectDuplicates);
  } catch (const json::parse_error& e) {
    // e.byte counts characters read from where parsing started (1-based).
    throw Error(ErrorKind::Corrupt,
                fmt::format("header is not valid UTF-8 JSON (error near file offset {}): {}",
                            8 + lead + (e.byte > 0 ? e.byte - 1 : 0), e.what()),
                path, "header");
  } catch (const json::exception& e) {
    // out_of_range 406: a number literal such as 1e999 that overflows a double.
    throw Error(ErrorKind::Corrupt, fmt::format("header is not valid JSON: {}", e.what()), path, "header");
  }
}

std::uint64_t nonNegativeInt(const json& v, const std::string& what, const std::string& path,
                             const std::string& tensor) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0)
    return static_cast<std::uint64_t>(v.get<std::int64_t>());
  throw Error(ErrorKind::Corrupt, fmt::format("{} must be a non-negative integer, found {}", what, v.dump()),
              path, tensor);
}

Entry parseEntry(const std::string& name, const json& v, const std::string& path) {
  if (!v.is_object())
    throw Error(ErrorKind::Corrupt, fmt::format("entry must be an object, found {}", v.type_name()), path,
                name);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) throw Error(ErrorKind::Corrupt, fmt::format("missing \"{}\"", key), path, name);
  Entry e;
  e.view.name = name;
  e.view.file = path;
  const json& dt = v["dtype"];
  if (!dt.is_string())
    throw Error(ErrorKind::Corrupt, fmt::format("\"dtype\" must be a string, found {}", dt.dump()), path,
                name);
  const std::string dts = dt.get<std::string>();
  if (!parseDType(dts, e.view.dtype)) {
    throw Error(ErrorKind::Unsupported,
                kKnownButUnsupported.count(dts)
                    ? fmt::format("dtype {} is valid safetensors but not supported by HeadScope", dts)
                    : fmt::format("unknown dtype \"{}\"", dts),
                path, name);
  }
  const json& shape = v["shape"];
  if (!shape.is_array())
    throw Error(ErrorKind::Corrupt, fmt::format("\"shape\" must be a list, found {}", shape.dump()), path,
                name);
  std::uint64_t numel = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::uint64_t d = nonNegativeInt(shape[i], fmt::format("shape[{}]", i), path, name);
    if (d > static_cast<std::uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, d, &numel) ||
        numel > static_cast<std::uint64_t>(INT64_MAX))
      throw Error(ErrorKind::Corrupt,
                  fmt::format("element count of shape {} overflows 64 bits", shape.dump()), path, name);
    e.view.shape.push_back(static_cast<std::int64_t>(d));
  }
  std::uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(dtypeSize(e.view.dtype)), &nbytes))
    throw Error(ErrorKind::Corrupt,
                fmt::format("byte size of shape {} x {} overflows 64 bits", shape.dump(), dts), path, name);
  e.view.nbytes = nbytes;
  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    throw Error(ErrorKind::Corrupt,
                fmt::format("\"data_offsets\" must be [begin, end], found {}", off.dump()), path, name);
  e.begin = nonNegativeInt(off[0], "data_offsets[0]", path, name);
  e.end = nonNegativeInt(off[1], "data_offsets[1]", path, name);
  return e;
}

// Every check of safetensors' read_metadata + Metadata::validate (S1-S11), on bytes in memory.
Layout parseLayout(const unsigned char* data, std::size_t size, const std::string& path) {
  if (size < 8)
    throw Error(ErrorKind::Corrupt,
                fmt::format("header too small: expected at least 8 bytes, file has {}", size), path);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];  // little-endian u64
  if (n > kMaxHeaderSize)
    throw Error(
        ErrorKind::Corrupt,
        fmt::format("header size {} exceeds the limit of {} bytes{}", n, kMaxHeaderSize, lfsHint(data, size)),
        path, "header");
  std::uint64_t dataStart = 0;
  if (__builtin_add_overflow(n, std::uint64_t{8}, &dataStart) || dataStart > size)
    throw Error(
        ErrorKind::Corrupt,
        fmt::format("header size {} runs past the end of the file: expected at least {} bytes, file has {}{}",
                    n, n + 8, size, lfsHint(data, size)),
        path, "header");
  const json header = parseHeaderJson(data + 8, static_cast<std::size_t>(n), path);
  if (!header.is_object())
    throw Error(ErrorKind::Corrupt, fmt::format("header must be a JSON object, found {}", header.type_name()),
                path, "header");

  Layout layout;
  layout.dataStart = dataStart;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object())
        throw Error(ErrorKind::Corrupt,
                    fmt::format("must be an object of strings, found {}", value.type_name()), path,
                    "__metadata__");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw Error(
              ErrorKind::Corrupt,
              fmt::format("value of \"{}\" must be a string, found {} (arbitrary JSON is not allowed)", mk,
                          mv.dump()),
              path, "__metadata__");
        layout.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    layout.entries.push_back(parseEntry(key, value, path));
  }

  auto& entries = layout.entries;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t expected = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    const std::string& name = e.view.name;
    if (e.end < e.begin)
      throw Error(ErrorKind::Corrupt, fmt::format("data_offsets [{}, {}] are inverted", e.begin, e.end), path,
                  name);
    if (e.begin != expected) {
      std::string msg;
      if (i == 0)
        msg = fmt::format("data_offsets must start at 0, found begin {}", e.begin);
      else if (e.begin < expected)
        msg = fmt::format("data_offsets [{}, {}] overlap tensor \"{}\" which ends at {}", e.begin, e.end,
                          entries[i - 1].view.name, expected);
      else
        msg = fmt::format("gap of {} bytes between tensor \"{}\" (ends at {}) and this one (begins at {})",
                          e.begin - expected, entries[i - 1].view.name, expected, e.begin);
      throw Error(ErrorKind::Corrupt, msg, path, name);
    }
    if (e.end - e.begin != e.view.nbytes)
      throw Error(ErrorKind::Corrupt,
                  fmt::format("expected {} bytes for shape {} x {}, header says {} (data_offsets [{}, {}])",
                              e.view.nbytes, e.view.shapeString(), dtypeName(e.view.dtype), e.end - e.begin,
                              e.begin, e.end),
                  path, name);
    expected = e.end;
  }
  std::uint64_t total = 0;
  if (__builtin_add_overflow(dataStart, expected, &total) || total > size)
    throw Error(ErrorKind::Corrupt,
                fmt::format("truncated: expected {} bytes, file has {} (incomplete download?)",
                            dataStart + expected, size),
                path);
  if (total < size)
    throw Error(ErrorKind::Corrupt,
                fmt::format("trailing bytes: expected {} bytes, file has {} ({} bytes after the last tensor)",
                            total, size, size - total),
                path);
  return layout;
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::shapeString() const {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

void checkSafetensorsBytes(const std::byte* data, std::size_t size, const std::string& path) {
  parseLayout(reinterpret_cast<const unsigned char*>(data), size, path);
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file->fd_ < 0) throw Error(ErrorKind::Io, fmt::format("cannot open: {}", std::strerror(errno)), path);
  struct stat st {};
  if (::fstat(file->fd_, &st) != 0)
    throw Error(ErrorKind::Io, fmt::format("cannot stat: {}", std::strerror(errno)), path);
  if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::Io, "not a regular file", path);
  file->size_ = static_cast<std::size_t>(st.st_size);
  if (file->size_ >= 8) {
    // MAP_PRIVATE + a kept fd: later writes to the path through rename() do not change our view.
    void* map = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, file->fd_, 0);
    if (map == MAP_FAILED)
      throw Error(ErrorKind::Io, fmt::format("cannot mmap: {}", std::strerror(errno)), path);
    file->map_ = map;
  }
  const auto* bytes = static_cast<const unsigned char*>(file->map_);
  Layout layout = parseLayout(bytes, file->size_, path);
  file->metadata_ = std::move(layout.metadata);
  file->tensors_.reserve(layout.entries.size());
  for (auto& e : layout.entries) {
    e.view.data = reinterpret_cast<const std::byte*>(bytes + layout.dataStart + e.begin);
    file->index_[e.view.name] = file->tensors_.size();
    file->tensors_.push_back(std::move(e.view));
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
  if (fd_ >= 0) ::close(fd_);
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void writeSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    check(!t.name.empty() && t.name != "__metadata__", ErrorKind::InvalidArgument,
          fmt::format("invalid tensor name \"{}\"", t.name), path);
    check(!header.contains(t.name), ErrorKind::InvalidArgument, "duplicate tensor name", path, t.name);
    std::uint64_t numel = 1;
    for (int64_t d : t.shape) {
      check(d >= 0 && !__builtin_mul_overflow(numel, static_cast<std::uint64_t>(d), &numel),
            ErrorKind::InvalidArgument, "negative or overflowing shape", path, t.name);
    }
    std::uint64_t nbytes = 0;
    const bool overflow = __builtin_mul_overflow(numel, std::uint64_t{dtypeSize(t.dtype)}, &nbytes);
    check(!overflow && nbytes == t.bytes.size(), ErrorKind::InvalidArgument,
          fmt::format("shape needs {} bytes of {}, given {}", nbytes, dtypeName(t.dtype), t.bytes.size()),
          path, t.name);
    header[t.name] = {
        {"dtype", dtypeName(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  // Pad with spaces so the data (and every F32 tensor in it) starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  check(text.size() <= kMaxHeaderSize, ErrorKind::InvalidArgument,
        fmt::format("header of {} bytes exceeds the limit of {}", text.size(), kMaxHeaderSize), path);
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>((text.size() >> (8 * i)) & 0xff);
  std::vector<ByteChunk> chunks = {{prefix, 8}, {text.data(), text.size()}};
  for (const auto& t : tensors) chunks.push_back({t.bytes.data(), t.bytes.size()});
  writeFileAtomically(path, chunks);
}

}  // namespace hs
