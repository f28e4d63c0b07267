// Owns the precompiled header that every test executable reuses (see test/CMakeLists.txt).
