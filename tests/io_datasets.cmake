# The real MNIST and Fashion-MNIST (data/fetch.sh) are read by tests of their own, which ctest
# reports SKIPPED when the data is absent.
tern_test(test_datasets unit SEPARATE real_data/mnist real_data/fashion_mnist)
# The tests write gzipped IDX files themselves, and look for the real data in data/ (or in
# $TERN_TEST_DATA_DIR when set: point it at an empty directory to see the skips).
target_link_libraries(test_datasets PRIVATE ZLIB::ZLIB)
target_compile_definitions(test_datasets PRIVATE TERN_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
