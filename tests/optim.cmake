# Tests of the optim area.
tern_test(test_optim unit)       # inner updates, schedules, settings, loop, ADMM state, STE, resume
