#include "inference/formats/npy.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "inference/formats/file_write.h"
#include "kernels/core/error.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.cpp reads and writes little-endian data by reinterpreting bytes: a little-endian host is required"
#endif

namespace hs {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
// numpy pads the header so the data starts at a multiple of 64 bytes (format.ARRAY_ALIGN).
constexpr std::size_t kAlign = 64;
// Large enough for any header numpy writes (1.0 caps it at 65535 bytes); refuses absurd lengths.
constexpr std::uint32_t kMaxHeader = 1u << 24;

struct Descr {
  const char* name;
  std::size_t size;
  bool isFloat;
};
constexpr Descr kDescrs[] = {{"<f4", 4, true},  {"<f8", 8, true},  {"<f2", 2, true},  {"<i8", 8, false},
                             {"<i4", 4, false}, {"<i2", 2, false}, {"|i1", 1, false}, {"<u1", 1, false},
                             {"|u1", 1, false}, {"|b1", 1, false}};

const Descr* findDescr(const std::string& s) {
  for (const auto& d : kDescrs)
    if (s == d.name) return &d;
  return nullptr;
}

// The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool haveDescr = false, haveFortran = false, haveShape = false;
    expect('{');
    while (true) {
      skipSpace();
      if (peek() == '}') break;
      const std::string key = quoted();
      expect(':');
      skipSpace();
      if (key == "descr") {
        descr = quoted();
        haveDescr = true;
      } else if (key == "fortran_order") {
        fortran = word() == "True";
        haveFortran = true;
      } else if (key == "shape") {
        shape = tuple();
        haveShape = true;
      } else {
        fail(fmt::format("unexpected key '{}'", key));
      }
      skipSpace();
      if (peek() == ',') ++pos_;
    }
    if (!haveDescr || !haveFortran || !haveShape)
      fail("header must hold 'descr', 'fortran_order' and 'shape'");
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(ErrorKind::Corrupt, fmt::format("{} (header position {}: \"{}\")", why, pos_, s_), path_,
                "header");
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t')) ++pos_;
  }
  void expect(char c) {
    skipSpace();
    if (peek() != c) fail(fmt::format("expected '{}'", c));
    ++pos_;
  }
  std::string quoted() {
    skipSpace();
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    const std::size_t end = s_.find(q, pos_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return out;
  }
  std::string word() {
    const std::size_t start = pos_;
    while (pos_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    std::string w = s_.substr(start, pos_ - start);
    if (w != "True" && w != "False") fail("expected True or False");
    return w;
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> out;
    expect('(');
    while (true) {
      skipSpace();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek())))
        fail("expected a non-negative integer in 'shape'");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (__builtin_mul_overflow(v, int64_t{10}, &v) ||
            __builtin_add_overflow(v, int64_t{peek() - '0'}, &v))
          fail("dimension overflows 64 bits");
        ++pos_;
      }
      out.push_back(v);
      skipSpace();
      if (peek() == ',')
        ++pos_;
      else if (peek() != ')')
        fail("expected ',' or ')' in 'shape'");
    }
    ++pos_;
    return out;
  }

  const std::string& s_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

uint16_t le16(const unsigned char* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// IEEE binary16 to binary32, exact for every value including subnormals, Inf and NaN.
float halfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise the mantissa
    exp = 113;
    while (!(mant & 0x400)) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <typename T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void writeArray(const std::string& path, const char* descr, const T* data,
                const std::vector<int64_t>& shape) {
  uint64_t numel = 1;
  for (int64_t d : shape)
    check(d >= 0 && !__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel),
          ErrorKind::InvalidArgument, "negative or overflowing shape", path);
  check(numel == 0 || data != nullptr, ErrorKind::InvalidArgument, "no data given for a non-empty array",
        path);
  // Python's tuple repr: (), (3,), (2, 3).
  std::string dims = fmt::format("{}", fmt::join(shape, ", "));
  if (shape.size() == 1) dims += ",";
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, dims);
  const std::size_t total = 10 + header.size() + 1;
  header.append((kAlign - total % kAlign) % kAlign, ' ');
  header.push_back('\n');
  check(header.size() <= 0xffff, ErrorKind::InvalidArgument, "too many dimensions for a format 1.0 header",
        path);
  unsigned char prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
  prefix[8] = static_cast<unsigned char>(header.size() & 0xff);
  prefix[9] = static_cast<unsigned char>(header.size() >> 8);
  writeFileAtomically(path, {{prefix, 10}, {header.data(), header.size()}, {data, numel * sizeof(T)}});
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<float> NpyArray::asFloat() const {
  const Descr* d = findDescr(descr);
  if (!d || !d->isFloat)
    throw Error(ErrorKind::Mismatch, fmt::format("expected a float array (<f4, <f8, <f2), found {}", descr),
                path);
  const std::size_t n = bytes.size() / d->size;
  std::vector<float> out(n);
  const unsigned char* p = bytes.data();
  for (std::size_t i = 0; i < n; ++i, p += d->size) {
    if (d->size == 4)
      out[i] = load<float>(p);
    else if (d->size == 8)
      out[i] = static_cast<float>(load<double>(p));
    else
      out[i] = halfToFloat(load<uint16_t>(p));
  }
  return out;
}

std::vector<int64_t> NpyArray::asInt() const {
  const Descr* d = findDescr(descr);
  if (!d || d->isFloat)
    throw Error(ErrorKind::Mismatch, fmt::format("expected an integer or bool array, found {}", descr), path);
  const std::size_t n = bytes.size() / d->size;
  std::vector<int64_t> out(n);
  const unsigned char* p = bytes.data();
  const bool isSigned = descr[1] == 'i';
  for (std::size_t i = 0; i < n; ++i, p += d->size) {
    if (d->size == 8)
      out[i] = load<int64_t>(p);
    else if (d->size == 4)
      out[i] = load<int32_t>(p);
    else if (d->size == 2)
      out[i] = load<int16_t>(p);
    else
      out[i] = isSigned ? static_cast<int64_t>(static_cast<int8_t>(*p)) : static_cast<int64_t>(*p);
  }
  return out;
}

NpyArray readNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(ErrorKind::Io, fmt::format("cannot open: {}", std::strerror(errno)), path);
  const auto fileSize = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  unsigned char prefix[12] = {};
  const std::size_t got = static_cast<std::size_t>(in.read(reinterpret_cast<char*>(prefix), 12).gcount());
  if (got < 10 || std::memcmp(prefix, kMagic, 6) != 0)
    throw Error(ErrorKind::Corrupt, "not a .npy file: missing the \\x93NUMPY magic", path);
  const int major = prefix[6];
  if (major < 1 || major > 3)
    throw Error(ErrorKind::Unsupported,
                fmt::format("format version {}.{} (supported: 1.0, 2.0, 3.0)", major, prefix[7]), path);
  const std::size_t lenBytes = major == 1 ? 2 : 4;
  if (got < 8 + lenBytes) throw Error(ErrorKind::Corrupt, "truncated header length", path);
  const uint32_t headerLen = major == 1 ? le16(prefix + 8) : le32(prefix + 8);
  const uint64_t dataStart = 8 + lenBytes + uint64_t{headerLen};
  if (headerLen > kMaxHeader || dataStart > fileSize)
    throw Error(ErrorKind::Corrupt,
                fmt::format("header length {} runs past the end of the file ({} bytes)", headerLen, fileSize),
                path);
  std::string header(headerLen, '\0');
  in.seekg(static_cast<std::streamoff>(8 + lenBytes));
  in.read(header.data(), headerLen);
  if (!in) throw Error(ErrorKind::Io, "cannot read the header", path);

  NpyArray a;
  a.path = path;
  bool fortran = false;
  HeaderParser(header, path).parse(a.descr, fortran, a.shape);
  const Descr* d = findDescr(a.descr);
  if (!d)
    throw Error(
        ErrorKind::Unsupported,
        fmt::format("dtype '{}' is not supported (supported: <f4 <f8 <f2 <i8 <i4 <i2 |i1 <u1 |u1 |b1)",
                    a.descr),
        path, "descr");
  if (fortran)
    throw Error(ErrorKind::Unsupported, "Fortran-order arrays are not supported", path, "fortran_order");
  uint64_t nbytes = d->size;
  for (int64_t dim : a.shape)
    if (__builtin_mul_overflow(nbytes, static_cast<uint64_t>(dim), &nbytes))
      throw Error(ErrorKind::Corrupt, "shape overflows 64 bits", path, "shape");
  if (nbytes != fileSize - dataStart)
    throw Error(ErrorKind::Corrupt,
                fmt::format("{}: expected {} data bytes for shape ({}) of {}, file has {}",
                            nbytes > fileSize - dataStart ? "truncated" : "trailing bytes", nbytes,
                            fmt::join(a.shape, ", "), a.descr, fileSize - dataStart),
                path);
  a.bytes.resize(static_cast<std::size_t>(nbytes));
  in.seekg(static_cast<std::streamoff>(dataStart));
  in.read(reinterpret_cast<char*>(a.bytes.data()), static_cast<std::streamsize>(nbytes));
  if (!in && nbytes > 0) throw Error(ErrorKind::Io, "cannot read the data", path);
  return a;
}

void writeNpy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  writeArray(path, "<f4", data, shape);
}

void writeNpy(const std::string& path, const int64_t* data, const std::vector<int64_t>& shape) {
  writeArray(path, "<i8", data, shape);
}

}  // namespace hs
