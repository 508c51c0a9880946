# CUDA is optional. HEADSCOPE_CUDA_KERNELS: nvcc exists, so the raw kernels (kernels/cuda/*.cu, no
# LibTorch) are compiled, also on CPU-only CI. HEADSCOPE_HAVE_CUDA: LibTorch has CUDA as well, so the
# bridge (attentionCuda), the GPU paths and their tests are built. Both off, with a message, otherwise.
set(HEADSCOPE_HAVE_CUDA OFF)
set(HEADSCOPE_CUDA_KERNELS OFF)
if(HEADSCOPE_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  set(_torch_cuda OFF)
  foreach(_lib IN LISTS TORCH_LIBRARIES)
    if(_lib MATCHES "torch_cuda|c10_cuda")
      set(_torch_cuda ON)
    endif()
  endforeach()
  if(CMAKE_CUDA_COMPILER)
    # Hopper (H100/H200) by default; set before enable_language so CMake does not pick its own default.
    if(NOT CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90a)
    endif()
    enable_language(CUDA)
    set(HEADSCOPE_CUDA_KERNELS ON)
    if(_torch_cuda)
      set(HEADSCOPE_HAVE_CUDA ON)
    endif()
  endif()
  message(STATUS "HeadScope: CUDA kernels ${HEADSCOPE_CUDA_KERNELS} (nvcc: ${CMAKE_CUDA_COMPILER}, arch "
                 "${CMAKE_CUDA_ARCHITECTURES}); CUDA LibTorch bridge ${HEADSCOPE_HAVE_CUDA}")
endif()
