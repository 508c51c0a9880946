# Every dependency comes from the system (Debian 12 packages here, a private prefix of unpacked
# .deb files on the CUDA host: see ../shared/cuda-host/README.md). Nothing is vendored.
find_package(Torch REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(fmt REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

# TorchConfig exports TORCH_LIBRARIES and TORCH_CXX_FLAGS rather than one clean target; wrap them.
add_library(hs_torch INTERFACE)
target_link_libraries(hs_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(hs_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
separate_arguments(_hs_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(hs_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_hs_torch_flags}>)
message(STATUS "HeadScope: LibTorch ${Torch_VERSION}")

# fmt header-only: PyTorch's LibTorch ships its own (newer) fmt headers on the include path, and
# mixing those headers with Debian's compiled libfmt fails at link time on the CUDA host.
add_library(hs_fmt INTERFACE)
target_link_libraries(hs_fmt INTERFACE fmt::fmt-header-only)
