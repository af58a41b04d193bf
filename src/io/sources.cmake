# Sources of src/io (owned by that area).
target_sources(tern PRIVATE ${CMAKE_CURRENT_LIST_DIR}/dataset.cpp)
target_sources(tern PRIVATE ${CMAKE_CURRENT_LIST_DIR}/checkpoint.cpp)
