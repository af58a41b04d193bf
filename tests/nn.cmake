tern_test(test_nn unit)
