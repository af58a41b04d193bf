# Tests of the nn area.
