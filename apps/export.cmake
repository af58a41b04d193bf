# tern-export (checkpoint -> deployable ternary model file) and tern-eval (evaluate it).
tern_app(tern-export ${CMAKE_CURRENT_LIST_DIR}/tern_export.cpp)
tern_app(tern-eval ${CMAKE_CURRENT_LIST_DIR}/tern_eval.cpp)
