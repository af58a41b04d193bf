tern_test(test_datasets unit)
# The tests write gzipped IDX files themselves, and look for the real MNIST in data/mnist.
target_link_libraries(test_datasets PRIVATE ZLIB::ZLIB)
target_compile_definitions(test_datasets PRIVATE TERN_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
