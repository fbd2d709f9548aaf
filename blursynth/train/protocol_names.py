"""The scoring protocols' names, in a module of their own so the command line can list them
without importing the scoring code (numpy, torch, OpenCV) at start-up."""

#: The protocols :func:`blursynth.train.protocols.score` knows, in the order reports list them.
PROTOCOLS = ("plain", "realblur", "levin", "kohler", "noref")
