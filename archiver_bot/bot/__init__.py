"""The matrix-nio archiver bot."""
