"""Input and output: images, slides and atomic file writing."""
