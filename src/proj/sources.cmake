# Sources of src/proj (owned by that area).
target_sources(tern PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/projection.cpp
  ${CMAKE_CURRENT_LIST_DIR}/box.cpp
  ${CMAKE_CURRENT_LIST_DIR}/binary.cpp
  ${CMAKE_CURRENT_LIST_DIR}/ternary.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sparse_ternary.cpp
  ${CMAKE_CURRENT_LIST_DIR}/power_of_two.cpp
  ${CMAKE_CURRENT_LIST_DIR}/quantizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/gtc.cpp)
