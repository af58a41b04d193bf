# Sources of src/nn (oneDNN layers, network, models).
set(tern_nn_sources
  layer.cpp weighted_layer.cpp conv2d.cpp linear.cpp batch_norm.cpp relu.cpp pooling.cpp
  dropout.cpp gain.cpp loss.cpp network.cpp models.cpp residual.cpp winograd.cpp)
list(TRANSFORM tern_nn_sources PREPEND ${CMAKE_CURRENT_LIST_DIR}/)
target_sources(tern PRIVATE ${tern_nn_sources})
# The Winograd transforms are multiply-adds on vectors: let GCC fuse them (FMA).
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/winograd.cpp PROPERTIES
                            COMPILE_OPTIONS "-ffp-contract=fast")
