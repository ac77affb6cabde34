"""Studies: a grid of runs from one spec, and the study's report."""
