# Sources of src/optim (owned by that area).
