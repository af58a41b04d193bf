# Sources of src/nn (oneDNN layers, network, models).
target_sources(tern PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/layer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/weighted_layer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/conv2d.cpp
  ${CMAKE_CURRENT_LIST_DIR}/linear.cpp
  ${CMAKE_CURRENT_LIST_DIR}/batch_norm.cpp
  ${CMAKE_CURRENT_LIST_DIR}/relu.cpp
  ${CMAKE_CURRENT_LIST_DIR}/pooling.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dropout.cpp
  ${CMAKE_CURRENT_LIST_DIR}/loss.cpp
  ${CMAKE_CURRENT_LIST_DIR}/network.cpp
  ${CMAKE_CURRENT_LIST_DIR}/models.cpp
  ${CMAKE_CURRENT_LIST_DIR}/winograd.cpp)
# The Winograd transforms are multiply-adds on vectors: let GCC fuse them (FMA).
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/winograd.cpp PROPERTIES
                            COMPILE_OPTIONS "-ffp-contract=fast")
