tern_test(test_nn unit)
tern_test(test_train unit)
