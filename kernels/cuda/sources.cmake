# kernels/cuda: the raw CUDA kernels build as hs_kernels_cuda (no LibTorch) whenever nvcc is found, so
# CI without a GPU still compiles the device code; the LibTorch bridge joins hs_kernels only when
# LibTorch has CUDA too (HEADSCOPE_HAVE_CUDA). Included from kernels/CMakeLists.txt.
if(HEADSCOPE_CUDA_KERNELS)
  find_package(CUDAToolkit REQUIRED)
  add_library(hs_kernels_cuda STATIC
    ${CMAKE_CURRENT_LIST_DIR}/attention_forward.cu
    ${CMAKE_CURRENT_LIST_DIR}/attention_stats.cu
    ${CMAKE_CURRENT_LIST_DIR}/attention_point.cu
    ${CMAKE_CURRENT_LIST_DIR}/attention_tc.cu
    ${CMAKE_CURRENT_LIST_DIR}/attention_wgmma.cu
    ${CMAKE_CURRENT_LIST_DIR}/attention_decode.cu
  )
  target_link_libraries(hs_kernels_cuda PUBLIC hs_base CUDA::cudart)
  # The shared runtime: the same libcudart that LibTorch loads, so streams and errors are shared.
  set_target_properties(hs_kernels_cuda PROPERTIES
    CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON CUDA_RUNTIME_LIBRARY Shared POSITION_INDEPENDENT_CODE ON)
  target_compile_options(hs_kernels_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
  # The wgmma statistics kernel exists only in sm_90a code; the host side needs to know it was built.
  if("90a" IN_LIST CMAKE_CUDA_ARCHITECTURES OR "90a-real" IN_LIST CMAKE_CUDA_ARCHITECTURES)
    target_compile_definitions(hs_kernels_cuda PRIVATE HEADSCOPE_CUDA_SM90A)
  endif()
  if(HEADSCOPE_HAVE_CUDA)
    target_sources(hs_kernels PRIVATE
      ${CMAKE_CURRENT_LIST_DIR}/attention_cuda_bridge.cpp
      ${CMAKE_CURRENT_LIST_DIR}/attention_cuda_validate.cpp
    )
    target_link_libraries(hs_kernels PUBLIC hs_kernels_cuda)
  endif()
endif()
