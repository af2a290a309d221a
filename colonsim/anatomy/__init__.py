"""Colon anatomy: the procedural colon (centreline, tube, folds, polyps), mesh files in and out,
and measurements of any colon mesh (radius, length, fold spacing)."""
