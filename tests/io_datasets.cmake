tern_test(test_datasets unit)
