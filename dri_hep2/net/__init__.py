"""The nets and their solvers as Caffe prototxt: Table 1 and the Fig. 2 module through block
helpers that return tops, one builder per net role, the schedule's solver, and the tools that
describe, draw and time a net. Imports the package root, `engine` and `data` (a train net
reads a data folder) only.
"""
