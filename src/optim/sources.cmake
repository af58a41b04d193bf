# Sources of src/optim (owned by that area).
target_sources(tern PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/sgd_update.cpp
  ${CMAKE_CURRENT_LIST_DIR}/optimizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/block_sets.cpp
  ${CMAKE_CURRENT_LIST_DIR}/callbacks.cpp
  ${CMAKE_CURRENT_LIST_DIR}/admm.cpp
  ${CMAKE_CURRENT_LIST_DIR}/projected_sgd.cpp
  ${CMAKE_CURRENT_LIST_DIR}/latent_blocks.cpp
  ${CMAKE_CURRENT_LIST_DIR}/ste.cpp
  ${CMAKE_CURRENT_LIST_DIR}/partial.cpp
  ${CMAKE_CURRENT_LIST_DIR}/least_squares.cpp
  ${CMAKE_CURRENT_LIST_DIR}/polish.cpp
  ${CMAKE_CURRENT_LIST_DIR}/distill.cpp
  ${CMAKE_CURRENT_LIST_DIR}/methods.cpp)
