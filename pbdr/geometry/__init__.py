"""Geometry helpers shared by estimators: position-welded edge tables of
meshes (``edges``), voxel grids for media (``voxels``)."""
