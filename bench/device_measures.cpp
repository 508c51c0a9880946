#include "bench/device_measures.h"

#include <fmt/format.h>

#ifdef HEADSCOPE_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

namespace hs::bench {

#ifdef HEADSCOPE_HAVE_CUDA
namespace {
c10::DeviceIndex indexOf(at::Device d) {
  return d.has_index() ? d.index() : c10::cuda::current_device();
}
}  // namespace
#endif

void synchronize(at::Device device) {
#ifdef HEADSCOPE_HAVE_CUDA
  if (device.is_cuda()) (void)cudaDeviceSynchronize();
#endif
  (void)device;
}

void resetPeakMemory(at::Device device) {
#ifdef HEADSCOPE_HAVE_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(indexOf(device));
#endif
  (void)device;
}

int64_t peakMemoryBytes(at::Device device) {
#ifdef HEADSCOPE_HAVE_CUDA
  // [0]: the aggregate of the allocator's pools.
  if (device.is_cuda())
    return c10::cuda::CUDACachingAllocator::getDeviceStats(indexOf(device)).allocated_bytes[0].peak;
#endif
  (void)device;
  return -1;
}

int64_t allocatedMemoryBytes(at::Device device) {
#ifdef HEADSCOPE_HAVE_CUDA
  if (device.is_cuda())
    return c10::cuda::CUDACachingAllocator::getDeviceStats(indexOf(device)).allocated_bytes[0].current;
#endif
  (void)device;
  return -1;
}

std::string deviceName(at::Device device) {
#ifdef HEADSCOPE_HAVE_CUDA
  if (device.is_cuda()) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, indexOf(device)) == cudaSuccess)
      return fmt::format("{} ({:.1f} GiB)", prop.name, static_cast<double>(prop.totalGlobalMem) / (1 << 30));
  }
#endif
  return device.str();
}

}  // namespace hs::bench
