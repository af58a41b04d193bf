# Sources of src/proj (owned by that area).
