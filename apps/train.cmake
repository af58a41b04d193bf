tern_app(tern-train tern_train.cpp)
