// Precompiled gtest and gmock for every test program (see
// tests/CMakeLists.txt, evsse_test_pch); this program has no tests.
