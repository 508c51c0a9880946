// Removes a directory tree with POSIX nftw. std::filesystem::remove_all is avoided on purpose:
// PyTorch's libtorch.so exports its own std::filesystem symbols, and a process linking it resolves
// remove_all to that copy, which crashed (null call) on the CUDA host.
#pragma once

#include <ftw.h>
#include <stdio.h>

#include <string>

namespace hs::test {

inline int removeTreeEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

// Deletes path and everything under it; ignores errors (test and benchmark cleanup).
inline void removeTree(const std::string& path) { ::nftw(path.c_str(), removeTreeEntry, 16, FTW_DEPTH | FTW_PHYS); }

}  // namespace hs::test
