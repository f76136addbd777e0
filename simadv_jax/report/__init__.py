"""Results files, plots, image grids and HTML reports."""
