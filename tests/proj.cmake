# Tests of the proj area.
tern_test(test_projection unit)
