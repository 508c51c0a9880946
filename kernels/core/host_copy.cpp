#include "kernels/core/host_copy.h"

#include <ATen/ATen.h>

#include <cstdint>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace hs {

std::vector<at::Tensor> copyToHost(const std::vector<at::Tensor>& tensors) {
  constexpr int64_t kAlign = 64, kHugePage = int64_t{2} << 20;
  std::vector<int64_t> offsets;
  int64_t total = 0;
  for (const auto& t : tensors) {
    offsets.push_back(total);
    if (t.defined()) total += (t.numel() * static_cast<int64_t>(t.element_size()) + kAlign - 1) / kAlign * kAlign;
  }
  // LibTorch's host allocations are 64-byte aligned, so every offset above is too.
  const at::Tensor block = at::empty({total}, at::TensorOptions().dtype(at::kByte));
#ifdef __linux__
  if (total >= 2 * kHugePage) {  // advise the whole 2 MiB pages inside the block (a hint: errors are ignored)
    const auto base = reinterpret_cast<uintptr_t>(block.data_ptr());
    const uintptr_t first = (base + kHugePage - 1) & ~static_cast<uintptr_t>(kHugePage - 1);
    const uintptr_t last = (base + static_cast<uintptr_t>(total)) & ~static_cast<uintptr_t>(kHugePage - 1);
    if (last > first) (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#endif
  std::vector<at::Tensor> out;
  out.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    if (!t.defined()) {
      out.emplace_back();
      continue;
    }
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    at::Tensor host = block.narrow(0, offsets[i], bytes).view(t.scalar_type()).view(t.sizes());
    host.copy_(t);
    out.push_back(std::move(host));
  }
  return out;
}

}  // namespace hs
