"""Geometry helpers shared by estimators: position-welded edge tables of
meshes (``edges``), SDF and voxel grids (``sdf``, ``voxels``)."""
