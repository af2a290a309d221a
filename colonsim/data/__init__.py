"""The data contract: the HDF5 schema, its writer, validator and reader, render shards, the torch
Dataset (the only module of ColonSim that imports torch), and folders of real frames."""
