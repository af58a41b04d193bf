# Sources of src/io (owned by that area). The only sources that include HDF5's headers.
target_sources(tern PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/dataset.cpp
  ${CMAKE_CURRENT_LIST_DIR}/hdf5_util.cpp
  ${CMAKE_CURRENT_LIST_DIR}/checkpoint.cpp
  ${CMAKE_CURRENT_LIST_DIR}/hdf5_file.cpp
  ${CMAKE_CURRENT_LIST_DIR}/integrity.cpp
  ${CMAKE_CURRENT_LIST_DIR}/probe.cpp)
