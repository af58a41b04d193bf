# Sources of src/io (owned by that area). The only sources that include HDF5's headers.
target_sources(tern PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/dataset.cpp
  ${CMAKE_CURRENT_LIST_DIR}/hdf5_util.cpp
  ${CMAKE_CURRENT_LIST_DIR}/checkpoint.cpp
  ${CMAKE_CURRENT_LIST_DIR}/hdf5_file.cpp
  ${CMAKE_CURRENT_LIST_DIR}/integrity.cpp
  ${CMAKE_CURRENT_LIST_DIR}/probe.cpp)
# Image folders: decoding through libjpeg-turbo and libpng, when found (CMakeLists.txt).
target_sources(tern PRIVATE ${CMAKE_CURRENT_LIST_DIR}/image_folder.cpp)
if(TERN_HAVE_IMAGE_FOLDER)
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/image_folder.cpp PROPERTIES
                              COMPILE_DEFINITIONS TERN_HAVE_IMAGE_FOLDER)
  target_link_libraries(tern PRIVATE PkgConfig::TURBOJPEG PkgConfig::LIBPNG)
endif()
