# Sources of src/nn (oneDNN layers, network, models).
target_sources(tern PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/layers.cpp
  ${CMAKE_CURRENT_LIST_DIR}/loss.cpp
  ${CMAKE_CURRENT_LIST_DIR}/network.cpp
  ${CMAKE_CURRENT_LIST_DIR}/models.cpp
  ${CMAKE_CURRENT_LIST_DIR}/winograd.cpp)
# The Winograd transforms are multiply-adds on vectors: let GCC fuse them (FMA).
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/winograd.cpp PROPERTIES
                            COMPILE_OPTIONS "-ffp-contract=fast")
