// Progress reporting and cancellation for long calls (model load, forward, batches).
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "kernels/core/error.h"

namespace hs {

// Passed by reference into long work; the work reports fractions and checks for cancellation
// between layers/jobs. A GUI polls or subscribes; the CLI ignores it.
class Progress {
 public:
  using Callback = std::function<void(double fraction, const std::string& stage)>;

  Progress() = default;
  explicit Progress(Callback cb) : callback_(std::move(cb)) {}

  // Records progress in [0, 1] for a named stage and forwards it to the callback.
  void report(double fraction, const std::string& stage) {
    fraction_.store(fraction);
    if (callback_) callback_(fraction, stage);
  }
  double fraction() const noexcept { return fraction_.load(); }

  // Asks the work to stop at its next check; safe from any thread.
  void cancel() noexcept { cancelled_.store(true); }
  bool cancelled() const noexcept { return cancelled_.load(); }
  // Throws Error(Cancelled) once cancel() was called.
  void throwIfCancelled(const std::string& stage) const {
    if (cancelled()) throw Error(ErrorKind::Cancelled, "cancelled during " + stage);
  }


 private:
  Callback callback_;
  std::atomic<double> fraction_{0.0};
  std::atomic<bool> cancelled_{false};
};

}  // namespace hs
