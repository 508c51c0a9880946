// What the GPU benchmark measures about the device: synchronisation around timings, the allocator's
// peak memory, the device's name. On the CPU the memory figures are unknown (-1).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace hs::bench {

// Waits until the device finished all queued work (no-op on the CPU).
void synchronize(at::Device device);
// Starts a new peak-memory measurement (LibTorch's caching allocator; no-op on the CPU).
void resetPeakMemory(at::Device device);
// Peak bytes allocated since the last reset, -1 where unknown (CPU).
int64_t peakMemoryBytes(at::Device device);
// Bytes allocated now, -1 where unknown (CPU).
int64_t allocatedMemoryBytes(at::Device device);
// "NVIDIA H100 80GB HBM3 (79.2 GiB)" or "cpu".
std::string deviceName(at::Device device);

}  // namespace hs::bench
