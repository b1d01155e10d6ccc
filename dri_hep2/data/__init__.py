"""The cells, from an input folder to Caffe's LMDBs (`make data`, `make synthetic`).

Readers of each on-disk layout, the split protocols, the rotation augmentation (Table 2),
the LMDB and mean writers, the synthetic replicas, and `DataFolder`, the one owner of a data
folder's layout. Imports the package root and `engine` (pycaffe's Datum) only.
"""
