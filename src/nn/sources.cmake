# Sources of src/nn (owned by that area).
