// The one error type that crosses HeadScope's module boundaries.
#pragma once

#include <stdexcept>
#include <string>

namespace hs {

// What went wrong, chosen by what the user does next.
enum class ErrorKind {
  Io,               // a file is missing, unreadable or unwritable
  Corrupt,          // a file's bytes contradict its own format
  Unsupported,      // a valid file uses something HeadScope does not implement
  Mismatch,         // two valid inputs disagree (config vs tensor shape, id vs vocab)
  InvalidArgument,  // the caller asked for something impossible (bad flag, id out of range)
  OutOfMemory,      // the request does not fit in host or device memory
  Numerical,        // NaN/Inf appeared where a finite value is required
  Cancelled,        // the user cancelled through a Progress token
  Device,           // the CUDA runtime reported an error
  Internal,         // a HeadScope bug
};

// Short lowercase name of an error kind, e.g. "corrupt".
inline const char* errorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Io: return "i/o error";
    case ErrorKind::Corrupt: return "corrupt";
    case ErrorKind::Unsupported: return "unsupported";
    case ErrorKind::Mismatch: return "mismatch";
    case ErrorKind::InvalidArgument: return "invalid argument";
    case ErrorKind::OutOfMemory: return "out of memory";
    case ErrorKind::Numerical: return "numerical error";
    case ErrorKind::Cancelled: return "cancelled";
    case ErrorKind::Device: return "device error";
    case ErrorKind::Internal: return "internal error";
  }
  return "error";
}

// Process exit code for an error: 2 for a bad invocation, 1 for everything else.
inline int exitCodeFor(ErrorKind kind) { return kind == ErrorKind::InvalidArgument ? 2 : 1; }

// A failure with its kind, the file it concerns and the tensor/field inside it.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message, std::string file = {}, std::string field = {})
      : std::runtime_error(compose(message, file, field)),
        kind_(kind),
        message_(std::move(message)),
        file_(std::move(file)),
        field_(std::move(field)) {}

  ErrorKind kind() const noexcept { return kind_; }
  const std::string& file() const noexcept { return file_; }
  const std::string& field() const noexcept { return field_; }
  // The bare message without the "file: field:" prefix that what() carries.
  const std::string& message() const noexcept { return message_; }

 private:
  static std::string compose(const std::string& message, const std::string& file, const std::string& field) {
    std::string out;
    if (!file.empty()) out += file + ": ";
    if (!field.empty()) out += field + ": ";
    return out + message;
  }

  ErrorKind kind_;
  std::string message_, file_, field_;
};

// Throws Error(kind, message, file, field) when cond is false; keeps checks one line long.
inline void check(bool cond, ErrorKind kind, const std::string& message, const std::string& file = {},
                  const std::string& field = {}) {
  if (!cond) throw Error(kind, message, file, field);
}

}  // namespace hs
